"""Integrations: track/artist metadata from the Spotify Web API and Last.fm, and import/export of common formats.

Owns the HTTP clients of external metadata services (``spotify``, ``lastfm``), their shared error type and retry
policy (``errors``, ``retry``), secret scrubbing of third-party log records (``redact``), the cached metadata
facade used by the alert path (``metadata``) and the file formats (``formats``: Spotify streaming history and
Last.fm scrobble importers into the §2 event schema, alert/metric exporters). Imports ``schema``, ``errors``,
``cache`` and ``alert.model``; nothing in the pipeline imports it except through :class:`MetadataService`.
"""

from tunewatch.integrations.errors import IntegrationError
from tunewatch.integrations.lastfm import LastfmClient, LastfmSettings
from tunewatch.integrations.metadata import MetadataProvider, MetadataService
from tunewatch.integrations.spotify import SpotifyMetadataClient, SpotifySettings

__all__ = [
    "IntegrationError",
    "LastfmClient",
    "LastfmSettings",
    "MetadataProvider",
    "MetadataService",
    "SpotifyMetadataClient",
    "SpotifySettings",
]
