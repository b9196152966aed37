"""The §2 event rules as vectorised Polars expressions, each with a cheap whole-column screen.

A :class:`Rule` has three parts:

* ``screen`` — a test on whole-column statistics (:class:`ColumnStats`: null counts, min/max, byte lengths),
  computed once per batch; a rule whose screen is false cannot fail on any row and is skipped entirely;
* ``detect`` — a cheap row mask, a superset of the failing rows, evaluated over the whole batch;
* ``mask`` — the exact failing-row mask, evaluated only on the rows some ``detect`` flagged.

Work columns: the raw text ``<field>``, the typed value ``<field>__v`` (ints, the timestamp in epoch ms,
bools) and, for enumerations, ``<field>__e``: null exactly where the text is not a member (market: an ``Enum``
cast; the small enumerations: a ``True`` membership flag from a few string comparisons, which is cheaper than
hashing each value into an ``Enum``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import polars as pl

from tunewatch.ingest.coerce import BAD_TYPE, BAD_UTF8, MARKERS, NOT_FINITE
from tunewatch.schema import (
    DURATION_SLACK_MS,
    EVENT_TYPES,
    FIELDS,
    FUTURE_TOLERANCE_MS,
    MARKET_CODES,
    Field,
    Kind,
)

TYPED_SUFFIX: Final = "__v"
ENUM_SUFFIX: Final = "__e"
#: C0/C1 controls, DEL, zero-width and bidirectional marks/overrides/isolates, line/paragraph separators, BOM.
CONTROL_RE: Final = r"[\x00-\x1F\x7F-\x9F\u061C\u200B-\u200F\u2028-\u202E\u2060-\u2069\uFEFF]"
_SPACES: Final = r"[ \u00A0\u1680\u2000-\u200A\u202F\u205F\u3000]"  # whitespace that is not a control
_PADDED_RE: Final = rf"^{_SPACES}|{_SPACES}$"
_RFC3339: Final = "%Y-%m-%dT%H:%M:%S%.f%#z"
_OCTET: Final = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"  # ASCII digits: \d is Unicode here
#: IPv4 dotted quad, or IPv6 (hex groups and colons, an optional zone, an optional embedded IPv4), in one regex.
_IP_RE: Final = (
    rf"^(?:(?:{_OCTET}\.){{3}}{_OCTET}"
    r"|[0-9A-Fa-f:]{2,39}(?:%[0-9A-Za-z]+)?"
    rf"|[0-9A-Fa-f:]{{2,29}}:(?:{_OCTET}\.){{3}}{_OCTET})$"
)
_MARKER_REASONS: Final = ((BAD_TYPE, "bad_type"), (NOT_FINITE, "not_finite"), (BAD_UTF8, "invalid_utf8"))
COUNTRY_ENUM: Final = pl.Enum(sorted(MARKET_CODES))
_I64: Final = 2**63
#: The wall clock in epoch ms, a column the validator adds so that rules need not be rebuilt per batch.
NOW_COLUMN: Final = "__now"
_NOW: Final = pl.col(NOW_COLUMN)
_NEVER: Final = pl.lit(False)


@dataclass(slots=True)
class ColumnStats:
    """Whole-batch statistics the screens look at (all cheap: null counts are metadata, the rest one pass).

    >>> stats = ColumnStats(rows=2, text_clean=True, now_ms=0, raw_nulls={"cdn": 0}, work_nulls={"cdn": 1})
    >>> stats.unparsed("cdn"), stats.absent("cdn")
    (True, False)
    """

    rows: int
    text_clean: bool
    now_ms: int
    typed_input: frozenset[str] = frozenset()  # fields the reader delivered typed (no text to check)
    raw_nulls: dict[str, int] = field(default_factory=dict)
    work_nulls: dict[str, int] = field(default_factory=dict)  # nulls of the typed / enum column
    minimum: dict[str, int | None] = field(default_factory=dict)
    maximum: dict[str, int | None] = field(default_factory=dict)
    len_min: dict[str, int | None] = field(default_factory=dict)
    len_max: dict[str, int | None] = field(default_factory=dict)

    def unparsed(self, name: str) -> bool:
        """Some present text of ``name`` did not parse into its typed/enum column."""
        return self.work_nulls.get(name, 0) > self.raw_nulls.get(name, 0)

    def absent(self, name: str) -> bool:
        """Some row lacks ``name`` or holds empty text."""
        low = self.len_min.get(name)
        return self.raw_nulls.get(name, 0) > 0 or (low is not None and low == 0) or not self.text_clean


Screen = Callable[[ColumnStats], bool]


def _always(_: ColumnStats) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule: the ``field: reason`` it reports, its exact mask, a cheap superset mask and a column screen.

    >>> rule = Rule("ms_played: negative", pl.col("ms_played") < 0)
    >>> rule.field
    'ms_played'
    >>> pl.DataFrame({"ms_played": [5, -1, None]}).select(rule.exact(frozenset())).to_series().to_list()
    [False, True, False]
    """

    reason: str
    mask: pl.Expr
    detect: pl.Expr | None = None
    screen: Screen = _always
    detect_clean: pl.Expr | None = None  # a cheaper ``detect`` valid when the batch's text is clean
    mask_typed: pl.Expr | None = None  # the exact mask when the reader delivered the field typed (no text)

    @property
    def field(self) -> str:
        """The field the rule reports on (the part of ``reason`` before the colon)."""
        return self.reason.partition(": ")[0]

    def exact(self, typed_input: frozenset[str]) -> pl.Expr:
        """The exact mask for a batch whose ``typed_input`` fields arrived typed, nulls as false."""
        if self.mask_typed is not None and self.field in typed_input:
            return self.mask_typed.fill_null(False)
        return self.mask.fill_null(False)

    def detector(self, text_clean: bool) -> pl.Expr:
        """The whole-batch row mask (``detect_clean``, ``detect`` or ``mask``), nulls as false."""
        chosen = self.detect_clean if text_clean and self.detect_clean is not None else self.detect
        return (chosen if chosen is not None else self.mask).fill_null(False)


def typed(name: str) -> pl.Expr:
    """The typed work column of field ``name``."""
    return pl.col(name + TYPED_SUFFIX)


def is_type(event_type: str) -> pl.Expr:
    """The work column that is true for events of ``event_type`` (see :func:`rule_context`)."""
    return pl.col(f"__is_{event_type}")


def rule_context(now_ms: int) -> list[pl.Expr]:
    """Columns the rules read besides the fields: the wall clock and one flag per event type (computed once)."""
    flags = [(pl.col("event_type") == t).fill_null(False).alias(f"__is_{t}") for t in EVENT_TYPES]
    return [pl.lit(now_ms, dtype=pl.Int64).alias(NOW_COLUMN), *flags]


def enum(name: str) -> pl.Expr:
    """The enumeration work column of field ``name``."""
    return pl.col(name + ENUM_SUFFIX)


def _is_enum(f: Field) -> bool:
    return f.choices is not None or f.name == "market"


# ----------------------------------------------------------------------------------------- work columns


def fast_columns(schema: pl.Schema, *, small: bool = False) -> list[pl.Expr]:
    """One pass of cheap casts: ints and the timestamp (plain integers), bools and enumerations (``Enum``).

    Columns the reader already delivered typed (``Int64``, ``Boolean``) are used as they are. The small
    enumerations' columns are membership flags (:func:`member_flag`), or with ``small`` (a batch of a few
    thousand rows at most) ``Enum`` casts, which cost less there (0.11 against 0.24 ms for 8 rows, 0.34
    against 0.64 ms for 4,000; more from about 15,000 rows): either is null exactly where the text is not a
    member, all the rules read.
    """
    out: list[pl.Expr] = []
    for f in FIELDS:
        col = pl.col(f.name)
        if schema.get(f.name) in (pl.Int64, pl.Boolean):
            out.append(col.alias(f.name + TYPED_SUFFIX))
        elif f.kind in (Kind.INT, Kind.TIMESTAMP):
            out.append(col.cast(pl.Int64, strict=False).alias(f.name + TYPED_SUFFIX))
        elif f.kind is Kind.BOOL:
            as_enum = col.cast(pl.Enum(["false", "true"]), strict=False)
            out.append(as_enum.to_physical().cast(pl.Boolean).alias(f.name + TYPED_SUFFIX))
        elif f.name == "market":
            out.append(col.cast(COUNTRY_ENUM, strict=False).alias(f.name + ENUM_SUFFIX))
        elif f.choices is not None and small:
            out.append(col.cast(pl.Enum(list(f.choices)), strict=False).alias(f.name + ENUM_SUFFIX))
        elif f.choices is not None:
            out.append(member_flag(col, f.choices).alias(f.name + ENUM_SUFFIX))
    return out


def member_flag(col: pl.Expr, choices: tuple[str, ...]) -> pl.Expr:
    """``True`` where the text ``col`` is one of ``choices`` (exact byte equality, as an ``Enum`` cast), else null."""
    return pl.when(pl.any_horizontal([col == choice for choice in choices])).then(pl.lit(True))


def lenient_column(f: Field) -> pl.Expr:
    """Slower parse for an int/timestamp column some of whose text is not a plain integer.

    Ints also accept integral floats (``"3.0"``, ``"1e3"``) and surrounding spaces; the timestamp also
    accepts RFC 3339 with an offset (``Z``, ``+02:00``; a space for ``T``).
    """
    text = pl.col(f.name).str.strip_chars()
    as_int = text.cast(pl.Int64, strict=False)
    if f.kind is Kind.TIMESTAMP:
        as_time = (
            text.str.to_uppercase()
            .str.replace(" ", "T", literal=True)
            .str.to_datetime(format=_RFC3339, strict=False, time_zone="UTC", time_unit="ms")
            .dt.epoch("ms")
        )
        return pl.coalesce(as_int, as_time).alias(f.name + TYPED_SUFFIX)
    as_float = text.cast(pl.Float64, strict=False)
    integral = as_float.is_finite() & (as_float == as_float.round()) & (as_float.abs() < 9.0e15)
    return pl.coalesce(as_int, pl.when(integral).then(as_float.cast(pl.Int64))).alias(f.name + TYPED_SUFFIX)


def stats_exprs() -> list[pl.Expr]:
    """Aggregations for :class:`ColumnStats`: min/max of typed ints, byte-length range of free text."""
    out: list[pl.Expr] = []
    for f in FIELDS:
        if f.kind in (Kind.INT, Kind.TIMESTAMP):
            out += [typed(f.name).min().alias("min:" + f.name), typed(f.name).max().alias("max:" + f.name)]
        elif f.kind is Kind.STRING and not _is_enum(f):
            length = pl.col(f.name).str.len_bytes()
            out += [length.min().alias("lmin:" + f.name), length.max().alias("lmax:" + f.name)]
    return out


# -------------------------------------------------------------------------------------------- screens


def _when_unclean_text(name: str) -> Screen:
    def screen(s: ColumnStats) -> bool:
        return not s.text_clean and name not in s.typed_input

    return screen


def _when_absent(name: str) -> Screen:
    def screen(s: ColumnStats) -> bool:
        return s.absent(name)

    return screen


def _when_unparsed(name: str) -> Screen:
    def screen(s: ColumnStats) -> bool:
        return s.unparsed(name)

    return screen


def _when_longer(name: str, limit: int) -> Screen:
    def screen(s: ColumnStats) -> bool:
        return (s.len_max.get(name) or 0) > limit

    return screen


def _when_outside(name: str, lo: int, hi: int, *, unparsed: bool = False) -> Screen:
    def screen(s: ColumnStats) -> bool:
        return (unparsed and s.unparsed(name)) or _outside(s, name, lo, hi)

    return screen


def _when_future(name: str) -> Screen:
    def screen(s: ColumnStats) -> bool:
        return _outside(s, name, -_I64, s.now_ms + FUTURE_TOLERANCE_MS)

    return screen


def _when_old(name: str, retention_ms: int) -> Screen:
    def screen(s: ColumnStats) -> bool:
        return _outside(s, name, s.now_ms - retention_ms, _I64)

    return screen


# ---------------------------------------------------------------------------------------------- rules


def _blank(name: str) -> pl.Expr:
    col = pl.col(name)
    return col.is_null() | (col.str.strip_chars().str.len_bytes() == 0)


def _present(name: str) -> pl.Expr:
    return ~_blank(name)


def _not_marker(name: str) -> pl.Expr:
    return ~pl.col(name).is_in(MARKERS)


def _presence_rules(f: Field) -> list[Rule]:
    raw = pl.col(f.name)
    if f.kind is Kind.STRING:
        # superset of blank text: null, "" or (only in unclean batches) a leading space
        blank = raw.is_null() | (raw.str.len_bytes() == 0)
        blank_any = blank | raw.str.contains(r"^\s")
    else:  # blank text never parses, so a null typed value is a superset that works on typed input too
        blank = blank_any = typed(f.name).is_null()
    if f.required:
        return [Rule(f"{f.name}: missing", _blank(f.name), blank_any, _when_absent(f.name), blank,
                     None if f.kind is Kind.STRING else blank)]  # fmt: skip
    if f.required_for:
        needs = pl.any_horizontal([is_type(t) for t in f.required_for])
        typed_mask = None if f.kind is Kind.STRING else needs & blank
        return [Rule(f"{f.name}: required_for_type", needs & _blank(f.name), needs & blank_any,
                     _when_absent(f.name), needs & blank, typed_mask)]  # fmt: skip
    return []


def _marker_rules(f: Field) -> list[Rule]:
    # markers are only made by exact decoding, which always clears text_clean
    return [
        Rule(f"{f.name}: {code}", pl.col(f.name) == marker, screen=_when_unclean_text(f.name))
        for marker, code in _MARKER_REASONS
    ]


def _text_rules(f: Field) -> list[Rule]:
    col = pl.col(f.name)
    name = f.name
    rules = [
        Rule(f"{name}: control_chars", col.str.contains(CONTROL_RE) & _not_marker(name),
             screen=lambda s: not s.text_clean),
        Rule(f"{name}: whitespace", col.str.contains(_PADDED_RE) & _present(name),
             screen=lambda s: not s.text_clean),
    ]  # fmt: skip
    if f.max_len is not None:
        limit = f.max_len
        rules.append(
            Rule(
                f"{name}: too_long", col.str.len_chars() > limit, col.str.len_bytes() > limit, _when_longer(name, limit)
            )
        )
    return rules


def _enum_rules(f: Field) -> list[Rule]:
    name = f.name
    code = "unknown_country" if name == "market" else "not_in_enum"
    failed = enum(name).is_null() & pl.col(name).is_not_null()
    exact = failed & _present(name) & _not_marker(name)
    return [Rule(f"{name}: {code}", exact, failed, _when_unparsed(name))]


def _int_rules(f: Field) -> list[Rule]:
    name = f.name
    col = pl.col(name)
    value = typed(name)
    unparsed = value.is_null() & col.is_not_null()
    number = col.str.strip_chars().cast(pl.Float64, strict=False)
    huge = number.is_infinite() | (number.abs() >= float(_I64))
    lo = f.min_value if f.min_value is not None else -_I64
    hi = f.max_value if f.max_value is not None else _I64 - 1
    return [
        Rule(f"{name}: not_integer", unparsed & _present(name) & _not_marker(name) & ~huge.fill_null(False),
             unparsed, _when_unparsed(name), mask_typed=_NEVER),
        Rule(f"{name}: out_of_range", (value < lo) | (value > hi) | (unparsed & huge),
             (value < lo) | (value > hi) | unparsed,
             _when_outside(name, lo, hi, unparsed=True), mask_typed=(value < lo) | (value > hi)),
    ]  # fmt: skip


def _outside(s: ColumnStats, name: str, lo: int, hi: int) -> bool:
    low, high = s.minimum.get(name), s.maximum.get(name)
    return (low is not None and low < lo) or (high is not None and high > hi)


def _bool_rules(f: Field) -> list[Rule]:
    name = f.name
    unparsed = typed(name).is_null() & pl.col(name).is_not_null()
    return [Rule(f"{name}: not_boolean", unparsed & _present(name) & _not_marker(name), unparsed,
                 _when_unparsed(name), mask_typed=_NEVER)]  # fmt: skip


def _ts_rules(f: Field, *, live: bool, retention_ms: int) -> list[Rule]:
    name = f.name
    ts = typed(name)
    unparsed = ts.is_null() & pl.col(name).is_not_null()
    rules = [
        Rule(f"{name}: bad_timestamp", unparsed & _present(name) & _not_marker(name), unparsed,
             _when_unparsed(name), mask_typed=_NEVER),
        Rule(f"{name}: future", ts > _NOW + FUTURE_TOLERANCE_MS,
             screen=_when_future(name)),
    ]  # fmt: skip
    if live:
        rules.append(Rule(f"{name}: too_old", ts < _NOW - retention_ms, screen=_when_old(name, retention_ms)))
    return rules


def _ip_rules() -> list[Rule]:
    ip = pl.col("ip_addr")
    bad = _present("ip_addr") & ~ip.str.contains(_IP_RE) & _not_marker("ip_addr")
    return [Rule("ip_addr: not_ip", bad, ~ip.str.contains(_IP_RE), lambda s: s.raw_nulls.get("ip_addr", 0) < s.rows)]


def _business_rules() -> list[Rule]:
    played, duration = typed("ms_played"), typed("track_duration_ms")
    playtime = played.fill_null(0) + typed("startup_ms").fill_null(0)
    return [
        Rule("ms_played: exceeds_duration", played > duration + DURATION_SLACK_MS),
        Rule("rebuffer_ms: exceeds_playtime", typed("rebuffer_ms") > playtime),
        Rule("tier: ad_not_free_tier", is_type("ad") & (pl.col("tier") != "free")),
    ]  # fmt: skip


def schema_rules(*, live: bool, retention_ms: int) -> list[Rule]:
    """All field-level and business rules of §2, in a stable order (the order reasons are reported in)."""
    rules: list[Rule] = []
    for f in FIELDS:
        rules += _presence_rules(f)
        rules += _marker_rules(f)
        if f.name == "ip_addr":
            rules += _ip_rules()
        elif f.kind is Kind.STRING and _is_enum(f):
            rules += _enum_rules(f)
        elif f.kind is Kind.STRING:
            rules += _text_rules(f)
        elif f.kind is Kind.INT:
            rules += _int_rules(f)
        elif f.kind is Kind.BOOL:
            rules += _bool_rules(f)
        else:
            rules += _ts_rules(f, live=live, retention_ms=retention_ms)
    return rules + _business_rules()


def valid_columns() -> list[pl.Expr]:
    """Expressions producing the ``VALID_SCHEMA`` columns (typed) from the validated work frame."""
    from tunewatch.schema import SKIP_MAX_MS, SKIP_REASONS

    out: list[pl.Expr] = []
    for f in FIELDS:
        if f.kind is Kind.STRING:
            out.append(pl.col(f.name))
        elif f.name == "skipped":
            ended = pl.any_horizontal([pl.col("reason_end") == r for r in SKIP_REASONS])  # is_in, cheaper
            inferred = (typed("ms_played") < SKIP_MAX_MS) & ended
            out.append(pl.coalesce(typed("skipped"), inferred.fill_null(False)).alias("skipped"))
        else:
            out.append(typed(f.name).alias(f.name))
    return out


__all__ = ["CONTROL_RE", "TYPED_SUFFIX", "ColumnStats", "Rule", "fast_columns", "schema_rules", "stats_exprs"]
