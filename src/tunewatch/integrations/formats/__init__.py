"""Import and export of common formats, vectorised with Polars.

* ``spotify_history``: a Spotify "Extended streaming history" export (JSON) → §2 play events;
* ``lastfm_scrobbles``: a Last.fm scrobble export (CSV or JSON) → §2 play events;
* ``ids``: deterministic event ids and keyed pseudonyms (HMAC-SHA256) as Polars expressions;
* ``export``: events to NDJSON, alerts and metric points to CSV or Parquet.
"""

from tunewatch.integrations.formats.export import export_alerts, export_frame, write_events
from tunewatch.integrations.formats.ids import PSEUDONYM_KEY_ENV, pseudonym_key
from tunewatch.integrations.formats.lastfm_scrobbles import import_lastfm_scrobbles
from tunewatch.integrations.formats.result import EventDefaults, ImportResult
from tunewatch.integrations.formats.spotify_history import import_spotify_history

__all__ = [
    "PSEUDONYM_KEY_ENV",
    "EventDefaults",
    "ImportResult",
    "export_alerts",
    "export_frame",
    "import_lastfm_scrobbles",
    "import_spotify_history",
    "pseudonym_key",
    "write_events",
]
