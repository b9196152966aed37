"""Import a Last.fm scrobble export (CSV or JSON) into §2 play events.

Accepted shapes:

* CSV with a header naming at least ``artist``, ``track`` and a time (``uts`` epoch seconds, or ``utc_time`` /
  ``date`` text), optionally ``album``, ``artist_mbid``, ``track_mbid`` (e.g. the "lastfm.ghan.nl" export);
* headerless CSV ``artist,album,track,date`` with dates like ``05 Jan 2026 10:00`` (the "lastfm-to-csv" export);
* JSON: ``user.getRecentTracks`` answers (one page ``{"recenttracks": {"track": [...]}}`` or a list of pages), or a
  flat list of their track objects (``artist.#text``, ``name``, ``album.#text``, ``mbid``, ``date.uts``).

Mapping: ``event_id`` = ``lfm-`` + SHA-256 of (user, time, artist, track); ``user_id`` = HMAC-SHA256 of the Last.fm
user name (``EventDefaults.user``, or the ``@attr.user`` of a JSON page); ``track_id`` = the track's MusicBrainz id
when the export has one, else ``tn-`` + SHA-256 of artist and title; ``artist_id`` = ``an-`` + SHA-256 of the
artist's name (the Spotify importer derives the same id from the same name). A scrobble does not say how long the
track played: ``track_duration_ms`` comes from ``durations`` (by track id) or ``default_duration_ms``, and the play is
taken as complete (``ms_played`` = duration, ``reason_end`` = ``trackdone``; Last.fm counts a scrobble only after
half the track or four minutes). The extra field ``duration_source`` (ignored by the validator) marks which:
``catalogue`` or ``assumed``; consumers weighing ``ms_played`` should leave ``assumed`` rows out. ``market``,
``platform`` and ``tier`` come from :class:`EventDefaults` (``market`` is required; ``ZZ`` says unknown). A "now
playing" entry (no time) is skipped and counted.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import polars as pl

from tunewatch.errors import InputError
from tunewatch.integrations.formats.ids import name_id, pseudonym, record_id
from tunewatch.integrations.formats.result import EventDefaults, ImportResult

DEFAULT_DURATION_MS: Final = 210_000
COLUMNS: Final = {
    "uts": pl.Int64,
    "artist": pl.String,
    "track": pl.String,
    "album": pl.String,
    "artist_mbid": pl.String,
    "track_mbid": pl.String,
    "user": pl.String,
}
_HEADERLESS: Final = ("artist", "album", "track", "date")
_TIME_COLUMNS: Final = ("uts", "utc_time", "date", "timestamp")


def _conform(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(
        (pl.col(c).cast(t, strict=False) if c in frame.columns else pl.lit(None, dtype=t)).alias(c)
        for c, t in COLUMNS.items()
    )


def _text_time(expr: pl.Expr) -> pl.Expr:
    """Epoch seconds of a time in text: Last.fm's ``05 Jan 2026 10:00`` / ``05 Jan 2026, 10:00`` or ISO (UTC)."""
    text = expr.str.strip_chars()
    parsed = [text.str.to_datetime(f, time_zone="UTC", strict=False) for f in ("%d %b %Y %H:%M", "%d %b %Y, %H:%M")]
    parsed.append(text.str.to_datetime(time_zone="UTC", strict=False))
    return pl.coalesce(parsed).dt.epoch("s")


def _read_csv(path: Path, text: str) -> pl.DataFrame:
    first = next(csv.reader(io.StringIO(text.split("\n", 1)[0])), [])
    header = [c.strip().lower() for c in first]
    has_header = "artist" in header and "track" in header and any(c in header for c in _TIME_COLUMNS)
    try:
        frame = pl.read_csv(
            io.StringIO(text),
            has_header=has_header,
            infer_schema=False,
        )
    except pl.exceptions.PolarsError as exc:
        raise InputError(f"{path}: not a Last.fm scrobble CSV: {exc}") from None
    if not has_header:
        if frame.width != len(_HEADERLESS):
            raise InputError(
                f"{path}: headerless CSV must have 4 columns (artist, album, track, date), got {frame.width}"
            )
        frame.columns = list(_HEADERLESS)
    frame = frame.rename({c: c.strip().lower() for c in frame.columns})
    if "uts" in frame.columns:
        uts = pl.col("uts").str.strip_chars().cast(pl.Int64, strict=False)
    else:
        name = next(c for c in _TIME_COLUMNS[1:] if c in frame.columns)
        uts = _text_time(pl.col(name))
    return _conform(frame.with_columns(uts.alias("uts")))


def _struct_text(frame: pl.DataFrame, column: str, *fields: str) -> pl.Expr:
    """A text column that may be a struct (``{"#text": …}`` / ``{"name": …}``) or plain text."""
    if column not in frame.columns:
        return pl.lit(None, dtype=pl.String)
    dtype = frame.schema[column]
    if isinstance(dtype, pl.Struct):
        names = [f.name for f in dtype.fields]
        present = [pl.col(column).struct.field(f).cast(pl.String) for f in fields if f in names]
        return pl.coalesce(present) if present else pl.lit(None, dtype=pl.String)
    return pl.col(column).cast(pl.String)


def _read_json(path: Path, text: str) -> pl.DataFrame:
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not JSON: {exc}") from None
    pages = data if isinstance(data, list) else [data]
    tracks: list[Any] = []
    users: list[str | None] = []
    for page in pages:  # one iteration per page of 200 scrobbles, not per scrobble
        if isinstance(page, dict) and isinstance(page.get("recenttracks"), dict):
            block = page["recenttracks"]
            items = block.get("track") or []
            items = [items] if isinstance(items, dict) else items
            user = (block.get("@attr") or {}).get("user")
            tracks.extend(items)
            users.extend([user] * len(items))
        elif isinstance(page, dict) and "name" in page:
            tracks.append(page)
            users.append(None)
        else:
            raise InputError(f"{path}: not a Last.fm scrobble export (expected recenttracks pages or track objects)")
    if not tracks:
        return pl.DataFrame(schema=COLUMNS)
    try:
        frame = pl.DataFrame(tracks, infer_schema_length=None)
    except (pl.exceptions.PolarsError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: track objects of mixed shapes, not a Last.fm export: {exc}") from None
    frame = frame.with_columns(pl.Series("user", users, dtype=pl.String))
    date = _struct_text(frame, "date", "uts")
    return _conform(
        frame.select(
            date.cast(pl.Int64, strict=False).alias("uts"),
            _struct_text(frame, "artist", "#text", "name").alias("artist"),
            _struct_text(frame, "name").alias("track"),
            _struct_text(frame, "album", "#text", "title").alias("album"),
            _struct_text(frame, "artist", "mbid").alias("artist_mbid"),
            _struct_text(frame, "mbid").alias("track_mbid"),
            pl.col("user"),
        )
    )


def read_lastfm_scrobbles(path: Path) -> pl.DataFrame:
    """Scrobbles of a CSV or JSON export as columns :data:`COLUMNS` (``uts`` in epoch seconds)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None
    if not text.strip():
        raise InputError(f"{path}: empty file")
    return _read_json(path, text) if text.lstrip()[:1] in ("[", "{") else _read_csv(path, text)


def scrobbles_to_events(
    scrobbles: pl.DataFrame,
    *,
    key: str,
    defaults: EventDefaults,
    durations: Mapping[str, int] | None = None,
    default_duration_ms: int = DEFAULT_DURATION_MS,
) -> ImportResult:
    """Map scrobbles (as read by :func:`read_lastfm_scrobbles`) to §2 play events."""
    if defaults.market is None:
        raise InputError("market: Last.fm scrobbles carry no country; give one (--market)")
    received = scrobbles.height
    frame = scrobbles.with_columns(
        pl.col("user").fill_null(pl.lit(defaults.user, dtype=pl.String)).alias("_user"),
        pl.col("artist").str.strip_chars(),
        pl.col("track").str.strip_chars(),
    )
    if frame.height and frame["_user"].null_count():
        raise InputError("user_id: the export does not name the Last.fm user; give the user name (--user)")
    named = pl.col("artist").is_not_null() & (pl.col("artist") != "") & pl.col("track").is_not_null()
    skipped = {
        "no_ts": int(frame.filter(pl.col("uts").is_null()).height),
        "no_artist_or_track": int(frame.filter(pl.col("uts").is_not_null() & ~named).height),
    }
    frame = frame.filter(pl.col("uts").is_not_null() & named)
    mbid = pl.col("track_mbid").str.strip_chars()
    track_id = (
        pl.when(mbid.is_not_null() & (mbid != ""))
        .then(mbid)
        .otherwise(name_id("tn", pl.concat_str(pl.col("artist"), pl.col("track"), separator="\x1f")))
    )
    frame = frame.with_columns(track_id.alias("_track"))
    known = pl.col("_track").replace_strict(dict(durations or {}), default=None, return_dtype=pl.Int64)
    duration = known.fill_null(default_duration_ms)
    events = frame.select(
        record_id("lfm", pl.col("_user"), pl.col("uts"), pl.col("artist"), pl.col("track")).alias("event_id"),
        (pl.col("uts") * 1000).alias("ts"),
        pl.lit("play").alias("event_type"),
        pseudonym(pl.col("_user"), key).alias("user_id"),
        pl.col("_track").alias("track_id"),
        name_id("an", pl.col("artist")).alias("artist_id"),
        pl.lit(defaults.market).alias("market"),
        pl.lit(defaults.platform).alias("platform"),
        pl.lit(defaults.tier).alias("tier"),
        duration.alias("ms_played"),
        duration.alias("track_duration_ms"),
        pl.lit("trackdone").alias("reason_end"),
        pl.lit(False).alias("skipped"),
        pl.when(known.is_null()).then(pl.lit("assumed")).otherwise(pl.lit("catalogue")).alias("duration_source"),
    ).sort("ts", maintain_order=True)  # time order: exports list the newest scrobble first
    assumed = int((events.get_column("duration_source") == "assumed").sum())
    inferred = {f"durations assumed ({default_duration_ms // 1000} s, played whole)": assumed}
    return ImportResult(events=events, received=received, skipped=skipped, inferred=inferred)


def import_lastfm_scrobbles(
    path: Path,
    *,
    key: str,
    defaults: EventDefaults,
    durations: Mapping[str, int] | None = None,
    default_duration_ms: int = DEFAULT_DURATION_MS,
) -> ImportResult:
    """Read a scrobble export and map it to §2 play events (see the module docstring for the mapping)."""
    return scrobbles_to_events(
        read_lastfm_scrobbles(path),
        key=key,
        defaults=defaults,
        durations=durations,
        default_duration_ms=default_duration_ms,
    )
