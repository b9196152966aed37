"""Import a Spotify "Extended streaming history" export into §2 play events.

The export is one or more JSON files (``Streaming_History_Audio_*.json``), each an array of records with ``ts``
(UTC end of playback), ``ms_played``, ``conn_country``, ``platform`` (free text such as
``"Android OS 13 API 33 (Google, Pixel 7)"``), ``spotify_track_uri``, ``master_metadata_*`` names, ``reason_start``,
``reason_end``, ``shuffle``, ``skipped``, ``offline`` and, in older exports, ``username``.

Mapping (all column-wise, no per-record Python):

* ``event_id`` = ``sp-`` + SHA-256 of (user, ts, track uri, ms_played, reason_start, reason_end, platform);
* ``user_id`` = HMAC-SHA256 of ``username`` (or of ``EventDefaults.user``) under ``TUNEWATCH_PSEUDONYM_KEY``;
* ``track_id`` = the id in ``spotify_track_uri``; ``artist_id`` = ``an-`` + SHA-256 of the album artist's name (the
  export has no artist id; the same name gives the same id in the Last.fm importer);
* ``track_duration_ms``: the export has no durations, and §2 requires one for a play. The importer never guesses
  a value that its own validator would reject (``ms_played: exceeds_duration``); the extra field
  ``duration_source`` (kept in the events file, ignored by the validator as every unknown field) says where each
  value comes from:

  - ``catalogue``: the duration ``durations`` gives (``--resolve-durations``: the Spotify Web API);
  - ``longest_play``: unknown to the catalogue: the longest play of the track in the export, a *lower bound*
    of the true duration (every play of the track fits in it, so ``ms_played`` is never judged against a guess);
  - ``play``: the play is longer than the catalogue's duration by more than §2's 5 s slack (seeking back
    within one play): the play's own length.

  Consumers comparing ``ms_played`` with ``track_duration_ms`` should use ``catalogue`` rows only;
* ``market`` = ``conn_country`` upper-cased; ``ZZ`` (Spotify's "unknown") is kept, and an empty or unassigned code
  becomes ``ZZ`` too (counted in ``ImportResult.inferred``);
* ``platform`` from the free text; ``reason_end`` onto the §2 enumeration; ``tier`` from ``EventDefaults``.

Events are written in time order (an export's files and records may come in any other, and a replay would
count the stragglers as late). Records without a track (podcast episodes, audiobooks), an artist name, a
parseable ``ts`` or a usable ``ms_played`` (negative, or beyond §2's two hours) are counted in
``ImportResult.skipped`` by reason. IP addresses and user agents of the export are not imported.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

import polars as pl

from tunewatch.errors import InputError
from tunewatch.integrations.formats.ids import name_id, pseudonym, record_id
from tunewatch.integrations.formats.result import EventDefaults, ImportResult
from tunewatch.schema import DURATION_SLACK_MS, MARKET_CODES, MAX_TRACK_MS, REASONS_END, UNKNOWN_MARKET

#: Columns read from the export, with their types (absent ones become null).
EXPORT_SCHEMA: Final = {
    "ts": pl.String,
    "username": pl.String,
    "platform": pl.String,
    "ms_played": pl.Int64,
    "conn_country": pl.String,
    "master_metadata_track_name": pl.String,
    "master_metadata_album_artist_name": pl.String,
    "master_metadata_album_album_name": pl.String,
    "spotify_track_uri": pl.String,
    "spotify_episode_uri": pl.String,
    "reason_start": pl.String,
    "reason_end": pl.String,
    "shuffle": pl.Boolean,
    "skipped": pl.Boolean,
    "offline": pl.Boolean,
}

#: (regular expression on the lower-cased platform text, §2 platform), first match wins.
PLATFORM_PATTERNS: Final = (
    (r"android[ _]?tv|smart[ _]?tv|\btv\b|tizen|webos|roku|fire ?tv|apple ?tv|playstation|xbox", "tv"),
    (r"android[ _]?auto|carplay|\bcar\b|automotive", "car"),
    (r"sonos|speaker|echo|alexa|google[ _]?home|chromecast|cast", "speaker"),
    (r"web[ _]?player|\bweb\b|browser", "web"),
    (r"\bios\b|iphone|ipad|ipod", "ios"),
    (r"android", "android"),
    (r"windows|os ?x|macos|mac ?os|linux|desktop", "desktop"),
)
_REASON_ALIASES: Final = {"unexpected-exit-while-paused": "unexpected-exit"}
_BOOLS: Final = {"true": True, "false": False}
RFC3339: Final = "%Y-%m-%dT%H:%M:%S%.f%#z"


def read_spotify_history(paths: Sequence[Path]) -> pl.DataFrame:
    """The records of one or more export files as one frame with :data:`EXPORT_SCHEMA` columns."""
    frames = []
    for path in paths:
        try:
            # every field as text first (fields outside the schema are not even decoded), so that one value of
            # the wrong type costs its record, not the file
            frame = pl.read_json(path, schema=dict.fromkeys(EXPORT_SCHEMA, pl.String))
        except FileNotFoundError:
            raise InputError(f"{path}: no such file") from None
        except (pl.exceptions.PolarsError, json.JSONDecodeError, ValueError) as exc:
            raise InputError(
                f"{path}: not a Spotify streaming-history export (a JSON array of records): {exc}"
            ) from None
        if frame.height and frame["ts"].null_count() == frame.height:
            raise InputError(f"{path}: records have no 'ts' field; not a Spotify streaming-history export")
        frames.append(frame.select(_typed(name, dtype) for name, dtype in EXPORT_SCHEMA.items()))
    if not frames:
        return pl.DataFrame(schema=EXPORT_SCHEMA)
    return pl.concat(frames, how="vertical")


def _typed(name: str, dtype: type[pl.DataType]) -> pl.Expr:
    """Column ``name`` (read as text) in ``dtype``; a value that does not fit becomes null."""
    text = pl.col(name).str.strip_chars()
    if dtype == pl.Boolean:
        return text.str.to_lowercase().replace_strict(_BOOLS, default=None, return_dtype=pl.Boolean).alias(name)
    if dtype == pl.Int64:
        number = text.cast(pl.Float64, strict=False)
        whole = number.is_finite() & (number == number.floor()) & (number.abs() < 2.0**53)
        return pl.when(whole).then(number.cast(pl.Int64)).otherwise(None).alias(name)
    return pl.col(name)


def platform_expr(text: pl.Expr) -> pl.Expr:
    """§2 platform of Spotify's free-text platform (``other`` when nothing matches)."""
    lower = text.str.to_lowercase()
    expr: pl.Expr = pl.lit("other")
    for pattern, platform in reversed(PLATFORM_PATTERNS):
        expr = pl.when(lower.str.contains(pattern)).then(pl.lit(platform)).otherwise(expr)
    return expr


def reason_end_expr(reason: pl.Expr) -> pl.Expr:
    """Spotify's ``reason_end`` onto the §2 enumeration (unknown values → ``other``)."""
    r = reason.str.to_lowercase().replace(_REASON_ALIASES)
    return pl.when(r.is_in(list(REASONS_END))).then(r).otherwise(pl.lit("other"))


def _per_distinct(frame: pl.DataFrame, column: str, expr: pl.Expr, dtype: type[pl.DataType]) -> pl.Expr:
    """``expr`` applied to ``column``, computed once per distinct value (a user or platform string repeats in
    nearly every record) and mapped back column-wise."""
    distinct = frame.select(pl.col(column).unique().drop_nulls())
    table = distinct.with_columns(expr.alias("_mapped"))
    mapping = dict(zip(table[column].to_list(), table["_mapped"].to_list(), strict=True))
    return pl.col(column).replace_strict(mapping, default=None, return_dtype=dtype)


def history_to_events(
    records: pl.DataFrame,
    *,
    key: str,
    defaults: EventDefaults | None = None,
    durations: Mapping[str, int] | None = None,
) -> ImportResult:
    """Map export records (as read by :func:`read_spotify_history`) to §2 play events."""
    defaults = defaults or EventDefaults()
    received = records.height
    user_fallback = defaults.user
    if user_fallback is None and records.height and records["username"].null_count() == records.height:
        raise InputError("user_id: the export has no 'username' field; give the account's user name (--user)")
    frame = records.with_columns(
        pl.coalesce(
            pl.col("ts").str.to_datetime(RFC3339, time_zone="UTC", strict=False).dt.epoch("ms"),
            pl.col("ts").str.extract(r"^\s*(\d{10,16})\s*$", 1).cast(pl.Int64, strict=False),
        ).alias("_ts_ms"),
        pl.when(pl.col("ms_played").is_between(0, MAX_TRACK_MS)).then(pl.col("ms_played")).alias("ms_played"),
        pl.col("spotify_track_uri").str.extract(r"^spotify:track:([0-9A-Za-z]+)$", 1).alias("_track"),
        pl.col("username").fill_null(pl.lit(user_fallback, dtype=pl.String)).alias("_user"),
    )
    artist = pl.col("master_metadata_album_artist_name").str.strip_chars()
    checks = {  # in order: a record is counted under the first check it fails
        "no_track": pl.col("_track").is_not_null(),
        "bad_ts": pl.col("_ts_ms").is_not_null(),
        "bad_ms_played": pl.col("ms_played").is_not_null(),
        "no_artist": artist.is_not_null() & (artist != ""),
    }
    skipped: dict[str, int] = {}
    passed = pl.lit(True)
    for reason, check in checks.items():
        skipped[reason] = int(frame.select((passed & ~check).sum()).item())
        passed = passed & check
    frame = frame.filter(passed)
    known = pl.col("_track").replace_strict(dict(durations or {}), default=None, return_dtype=pl.Int64)
    longest = pl.col("ms_played").max().over("_track").clip(lower_bound=1)
    over = pl.col("ms_played") > known + DURATION_SLACK_MS
    duration = pl.when(known.is_null()).then(longest).when(over).then(pl.col("ms_played")).otherwise(known)
    source = pl.when(known.is_null()).then(pl.lit("longest_play")).when(over).then(pl.lit("play"))
    country = pl.col("conn_country").str.strip_chars().str.to_uppercase()
    market = pl.when(country.is_in(list(MARKET_CODES))).then(country).otherwise(pl.lit(UNKNOWN_MARKET))
    events = frame.select(
        record_id(
            "sp",
            pl.col("_user"),
            pl.col("ts"),
            pl.col("spotify_track_uri"),
            pl.col("ms_played"),
            pl.col("reason_start"),
            pl.col("reason_end"),
            pl.col("platform"),
        ).alias("event_id"),
        pl.col("_ts_ms").alias("ts"),
        pl.lit("play").alias("event_type"),
        _per_distinct(frame, "_user", pseudonym(pl.col("_user"), key), pl.String).alias("user_id"),
        pl.col("_track").alias("track_id"),
        name_id("an", pl.col("master_metadata_album_artist_name")).alias("artist_id"),
        market.alias("market"),
        _per_distinct(frame, "platform", platform_expr(pl.col("platform")), pl.String)
        .fill_null(pl.lit(defaults.platform))
        .alias("platform"),
        pl.lit(defaults.tier).alias("tier"),
        pl.col("ms_played"),
        duration.alias("track_duration_ms"),
        reason_end_expr(pl.col("reason_end")).fill_null(pl.lit("other")).alias("reason_end"),
        pl.col("skipped"),
        pl.col("offline"),
        pl.col("shuffle"),
        source.otherwise(pl.lit("catalogue")).alias("duration_source"),
    ).sort("ts", maintain_order=True)  # time order: files and records of an export come in any order
    unknown_market = frame.select((~country.is_in(list(MARKET_CODES)) | country.is_null()).sum()).item()
    sources = events.get_column("duration_source").value_counts()
    counted = dict(zip(sources["duration_source"].to_list(), sources["count"].to_list(), strict=True))
    inferred = {
        "market unknown (ZZ)": int(unknown_market) + int(frame.select((country == UNKNOWN_MARKET).sum()).item()),
        "durations from the longest play": int(counted.get("longest_play", 0)),
        "durations from a play longer than the catalogue's": int(counted.get("play", 0)),
    }
    return ImportResult(events=events, received=received, skipped=skipped, inferred=inferred)


def import_spotify_history(
    paths: Sequence[Path],
    *,
    key: str,
    defaults: EventDefaults | None = None,
    durations: Mapping[str, int] | None = None,
) -> ImportResult:
    """Read export files and map them to §2 play events (see the module docstring for the mapping)."""
    return history_to_events(read_spotify_history(paths), key=key, defaults=defaults, durations=durations)
