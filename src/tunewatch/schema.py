"""The event schema (ARCHITECTURE.md §2): the one definition every reader, the validator and the simulator use.

This module owns field names, their logical types, the enumerations and the numeric limits. It imports
nothing from the rest of tunewatch.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import polars as pl


class Kind(StrEnum):
    """Logical type of a field as it appears in an event."""

    STRING = "string"
    INT = "int"
    BOOL = "bool"
    TIMESTAMP = "timestamp"  # RFC 3339 string or integer epoch milliseconds


@dataclass(frozen=True, slots=True)
class Field:
    """One field of the event schema."""

    name: str
    kind: Kind
    required: bool = False
    required_for: tuple[str, ...] = ()  # event types for which the field is required
    max_len: int | None = None  # strings: maximum length in characters
    choices: tuple[str, ...] | None = None  # strings: closed enumeration
    min_value: int | None = None  # ints: inclusive lower bound
    max_value: int | None = None  # ints: inclusive upper bound
    personal: bool = False  # personal data: pseudonymise/encrypt before storage
    doc: str = ""


EVENT_TYPES: Final = ("play", "error", "ad")
PLATFORMS: Final = ("ios", "android", "web", "desktop", "tv", "car", "speaker", "other")
TIERS: Final = ("free", "premium", "family", "student", "duo")
SOURCES: Final = ("playlist", "album", "artist", "search", "radio", "recommendation", "other")
REASONS_END: Final = ("trackdone", "fwdbtn", "backbtn", "endplay", "logout", "unexpected-exit", "remote", "other")
CODECS: Final = ("ogg", "aac", "mp3", "flac", "other")

#: ISO 3166-1 alpha-2: every officially assigned code.
COUNTRY_CODES: Final = frozenset(
    """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY
    BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK
    FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR
    IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK
    ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM
    PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF
    TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW
    """.split()  # noqa: SIM905
)

#: ``market`` for an unknown country (user-assigned in ISO 3166-1; Spotify exports and CLDR use it so).
UNKNOWN_MARKET: Final = "ZZ"
#: Every value §2 allows in ``market``: the assigned ISO 3166-1 alpha-2 codes and ``ZZ`` (unknown).
MARKET_CODES: Final = COUNTRY_CODES | {UNKNOWN_MARKET}

STREAM_MIN_MS: Final = 30_000  # a play of at least this many ms is a royalty-eligible stream
SKIP_MAX_MS: Final = 30_000  # an inferred skip: fewer ms played than this, ended by fwd/back button
SKIP_REASONS: Final = ("fwdbtn", "backbtn")
DURATION_SLACK_MS: Final = 5_000  # ms_played may exceed track_duration_ms by this much
MAX_TRACK_MS: Final = 2 * 3600 * 1000
FUTURE_TOLERANCE_MS: Final = 5 * 60 * 1000
RETENTION_MS: Final = 30 * 24 * 3600 * 1000
LOW_QUALITY_KBPS: Final = 96

_I64_MAX: Final = 2**63 - 1

FIELDS: Final[tuple[Field, ...]] = (
    Field("event_id", Kind.STRING, required=True, max_len=64, doc="unique id; repeats are duplicates"),
    Field("ts", Kind.TIMESTAMP, required=True, doc="event time: RFC 3339 or epoch milliseconds"),
    Field("event_type", Kind.STRING, required=True, choices=EVENT_TYPES),
    Field("user_id", Kind.STRING, required=True, max_len=128, personal=True),
    Field("session_id", Kind.STRING, max_len=128),
    Field("track_id", Kind.STRING, required_for=("play", "error"), max_len=64),
    Field("artist_id", Kind.STRING, required_for=("play", "error"), max_len=64),
    Field("market", Kind.STRING, required=True, max_len=2, doc="ISO 3166-1 alpha-2, upper case; ZZ = unknown"),
    Field("platform", Kind.STRING, required=True, choices=PLATFORMS),
    Field("tier", Kind.STRING, required=True, choices=TIERS),
    Field("source", Kind.STRING, choices=SOURCES),
    Field("cdn", Kind.STRING, max_len=64),
    Field("ms_played", Kind.INT, required_for=("play",), min_value=0, max_value=_I64_MAX),
    Field("track_duration_ms", Kind.INT, required_for=("play",), min_value=1, max_value=MAX_TRACK_MS),
    Field("reason_end", Kind.STRING, required_for=("play",), choices=REASONS_END),
    Field("skipped", Kind.BOOL),
    Field("startup_ms", Kind.INT, min_value=0, max_value=120_000),
    Field("rebuffer_count", Kind.INT, min_value=0, max_value=_I64_MAX),
    Field("rebuffer_ms", Kind.INT, min_value=0, max_value=_I64_MAX),
    Field("bitrate_kbps", Kind.INT, min_value=8, max_value=1411),
    Field("codec", Kind.STRING, choices=CODECS),
    Field("error_code", Kind.STRING, required_for=("error",), max_len=64),
    Field("ad_revenue_micros", Kind.INT, required_for=("ad",), min_value=0, max_value=_I64_MAX),
    Field("ip_addr", Kind.STRING, max_len=45, personal=True),
    Field("user_agent", Kind.STRING, max_len=512),
    Field("offline", Kind.BOOL),
    Field("shuffle", Kind.BOOL),
)

FIELD_BY_NAME: Final = {f.name: f for f in FIELDS}
FIELD_NAMES: Final = tuple(f.name for f in FIELDS)
PERSONAL_FIELDS: Final = tuple(f.name for f in FIELDS if f.personal)

#: Polars dtype of each field once validated (timestamps as UTC milliseconds).
_VALID_DTYPES: Final = {Kind.STRING: pl.String, Kind.INT: pl.Int64, Kind.BOOL: pl.Boolean, Kind.TIMESTAMP: pl.Int64}

#: Schema in which files are first read: every field as text, so that one bad value never fails a file.
RAW_SCHEMA: Final = pl.Schema({name: pl.String for name in FIELD_NAMES})

#: Schema of validated events (what the validator emits and the processor consumes).
VALID_SCHEMA: Final = pl.Schema({f.name: _VALID_DTYPES[f.kind] for f in FIELDS})

#: Dimension fields metric series are split by (ARCHITECTURE.md §3).
DIMENSION_FIELDS: Final = ("market", "platform", "cdn", "tier", "source", "track_id", "artist_id")


def field(name: str) -> Field:
    """Return the schema entry for ``name`` (KeyError for unknown names)."""
    return FIELD_BY_NAME[name]
