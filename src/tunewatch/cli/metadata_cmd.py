"""``tunewatch metadata``: look up track/artist metadata (Spotify, Last.fm) and import/export common formats.

Credentials only from the environment: ``SPOTIFY_CLIENT_ID``/``SPOTIFY_CLIENT_SECRET``, ``LASTFM_API_KEY``;
imports pseudonymise user ids with ``TUNEWATCH_PSEUDONYM_KEY``. The cache is the one configured by
``TUNEWATCH_CACHE_*`` (memory by default), so lookups share Redis with the service when it is configured.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import polars as pl
import typer
from rich.console import Console

from tunewatch.cli.feedback import fail, note, user_errors
from tunewatch.cli.paths import output_path, text_input
from tunewatch.errors import InputError

app = typer.Typer(
    name="metadata",
    help="Track/artist metadata from Spotify and Last.fm; import listening histories; export alerts and metrics.",
    no_args_is_help=True,
)
out = Console(highlight=False, soft_wrap=True)

UserOption = Annotated[
    str | None, typer.Option("--user", help="Account name to pseudonymise when the export has none.")
]
TierOption = Annotated[str, typer.Option("--tier", help="Subscription tier of the account (exports never say).")]


def _service(use_lastfm: bool) -> Any:
    from tunewatch.cache import MusicStreamingCacheManager
    from tunewatch.integrations.lastfm import LastfmClient
    from tunewatch.integrations.metadata import MetadataService, spotify_client

    providers: list[Any] = []
    enrichers: list[Any] = []
    if os.environ.get("SPOTIFY_CLIENT_ID") and os.environ.get("SPOTIFY_CLIENT_SECRET"):
        providers.append(spotify_client())
    if use_lastfm and os.environ.get("LASTFM_API_KEY"):
        lastfm = LastfmClient()
        providers.append(lastfm)
        enrichers.append(lastfm)
    if not providers:
        raise InputError(
            "no metadata provider configured: set SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET, or LASTFM_API_KEY"
        )
    return MetadataService(providers, MusicStreamingCacheManager(), enrichers=enrichers)


@app.command("lookup")
def lookup(
    track: Annotated[
        list[str] | None, typer.Option("--track", help="Track id (Spotify id/URI or MBID); repeatable.")
    ] = None,
    artist: Annotated[list[str] | None, typer.Option("--artist", help="Artist id; repeatable.")] = None,
    lastfm: Annotated[bool, typer.Option("--lastfm/--no-lastfm", help="Also ask Last.fm (listeners, tags).")] = True,
) -> None:
    """Print the metadata of tracks and artists as JSON lines ({"kind", "id", "found", "metadata"})."""
    if not track and not artist:
        fail("give at least one --track or --artist")
    with user_errors():
        service = _service(lastfm)
        results = [("track", i, r) for i, r in service.tracks(track or []).items()]
        results += [("artist", i, r) for i, r in service.artists(artist or []).items()]
    for kind, item_id, record in results:
        line = {"kind": kind, "id": item_id, "found": record is not None, "metadata": record}
        out.print(json.dumps(line, ensure_ascii=False), markup=False)
    missing = sum(record is None for *_, record in results)
    if missing:
        note(f"{missing} of {len(results)} ids unknown to every provider")


def _durations(track_ids: list[str]) -> dict[str, int]:
    service = _service(use_lastfm=False)
    found = service.tracks(track_ids)
    return {i: int(r["duration_ms"]) for i, r in found.items() if r and r.get("duration_ms")}


@app.command("import-spotify-history")
def import_spotify_history(
    files: Annotated[list[Path], typer.Argument(help="Streaming_History_Audio_*.json files of a Spotify export.")],
    out_path: Annotated[Path, typer.Option("--out", help="Events file to write (.ndjson, .csv or .parquet).")],
    user: UserOption = None,
    tier: TierOption = "premium",
    resolve_durations: Annotated[
        bool, typer.Option("--resolve-durations", help="Take track durations from the Spotify Web API.")
    ] = False,
) -> None:
    """Convert a Spotify Extended streaming history export into tunewatch play events."""
    from tunewatch.integrations.formats import EventDefaults, pseudonym_key, write_events
    from tunewatch.integrations.formats import spotify_history as sh

    with user_errors():
        output_path(out_path, "events file")
        key = pseudonym_key()
        defaults = EventDefaults(tier=tier, user=user)
        records = sh.read_spotify_history(files)
        durations = None
        if resolve_durations:
            ids = records["spotify_track_uri"].str.extract(r"^spotify:track:([0-9A-Za-z]+)$", 1).drop_nulls()
            durations = _durations(ids.unique().to_list())
        result = sh.history_to_events(records, key=key, defaults=defaults, durations=durations)
        write_events(result.events, out_path)
    note(f"{out_path}: {result.summary()}")


@app.command("import-lastfm")
def import_lastfm(
    file: Annotated[Path, typer.Argument(help="Last.fm scrobble export (CSV or JSON).")],
    out_path: Annotated[Path, typer.Option("--out", help="Events file to write (.ndjson, .csv or .parquet).")],
    market: Annotated[str, typer.Option("--market", help="Country of the listener (ISO 3166-1 alpha-2).")],
    user: UserOption = None,
    tier: TierOption = "premium",
    platform: Annotated[str, typer.Option("--platform", help="Platform to record (scrobbles do not say).")] = "other",
    duration_ms: Annotated[
        int, typer.Option("--duration-ms", min=1, max=7_200_000, help="Track duration assumed when none is known.")
    ] = 210_000,
) -> None:
    """Convert a Last.fm scrobble export into tunewatch play events."""
    from tunewatch.integrations.formats import EventDefaults, import_lastfm_scrobbles, pseudonym_key, write_events

    with user_errors():
        output_path(out_path, "events file")
        key = pseudonym_key()
        defaults = EventDefaults(tier=tier, market=market, platform=platform, user=user)
        result = import_lastfm_scrobbles(file, key=key, defaults=defaults, default_duration_ms=duration_ms)
        write_events(result.events, out_path)
    note(f"{out_path}: {result.summary()}")


@app.command("export-alerts")
def export_alerts(
    alerts: Annotated[Path, typer.Argument(help="Alerts NDJSON (from replay --alerts-out); - reads stdin.")],
    out_path: Annotated[Path, typer.Option("--out", help="Output file (.csv, .parquet or .ndjson).")],
) -> None:
    """Flatten alerts (one column per label and annotation) into CSV or Parquet."""
    from tunewatch.integrations.formats.export import export_alerts as write
    from tunewatch.integrations.formats.export import format_of, read_alerts

    with user_errors():
        format_of(out_path)
        output_path(out_path)
        source = text_input(alerts, "alerts file", allow_empty=False)
        found = read_alerts(source)
        if not found:
            raise InputError(f"{source}: holds no alerts (only blank lines)")
        rows = write(found, out_path)
    note(f"{out_path}: {rows} alerts")


@app.command("export-metrics")
def export_metrics(
    metrics: Annotated[Path, typer.Argument(help="Metric points (.ndjson, .csv or .parquet).")],
    out_path: Annotated[Path, typer.Option("--out", help="Output file (.csv, .parquet or .ndjson).")],
) -> None:
    """Convert a file of metric points between NDJSON, CSV and Parquet."""
    from tunewatch.integrations.formats.export import export_frame, format_of

    with user_errors():
        format_of(out_path)
        output_path(out_path)
        if metrics.suffix.lower() not in (".ndjson", ".jsonl", ".csv", ".parquet", ".pq"):
            raise InputError(f"{metrics}: unknown format of metric points; use .ndjson, .csv or .parquet")
        fmt = format_of(metrics)
        if fmt != "parquet":
            text_input(metrics, "metric points file", allow_empty=False)
        try:
            if fmt == "parquet":
                frame = pl.read_parquet(metrics)
            elif fmt == "csv":
                frame = pl.read_csv(metrics)
            else:
                frame = pl.read_ndjson(metrics)
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise InputError(f"{metrics}: cannot read metric points ({type(exc).__name__})") from None
        _check_metric_points(metrics, frame)
        rows = export_frame(frame, out_path)
    note(f"{out_path}: {rows} metric points")


def _check_metric_points(path: Path, frame: pl.DataFrame) -> None:
    """Metric points have a ``metric`` column (long form) or metric columns of the catalogue (wide form)."""
    from tunewatch.process.catalogue import METRICS

    if frame.is_empty():
        raise InputError(f"{path}: holds no metric points")
    if {"labels", "status"} <= set(frame.columns):
        raise InputError(f"{path}: holds alerts, not metric points; use `tunewatch metadata export-alerts`")
    if "metric" not in frame.columns and not set(METRICS) & set(frame.columns):
        raise InputError(
            f"{path}: not metric points: no 'metric' column and none of the catalogue's metrics "
            f"(found: {', '.join(frame.columns[:8])})"
        )
