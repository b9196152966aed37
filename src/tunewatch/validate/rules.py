"""The §2 event rules as vectorised Polars expressions over the raw text columns.

Each rule is a ``(reason, failing_mask)`` pair: ``reason`` is the machine-readable ``field: code`` and the mask
is true for the rows that break the rule. Typed helper columns (``<field>__v``) are prepared by
:func:`typed_columns` first; the validator evaluates all masks in one pass.
"""

from __future__ import annotations

from typing import Final

import polars as pl

from tunewatch.ingest.coerce import BAD_TYPE
from tunewatch.schema import (
    COUNTRY_CODES,
    DURATION_SLACK_MS,
    FIELDS,
    FUTURE_TOLERANCE_MS,
    RETENTION_MS,
    SKIP_MAX_MS,
    SKIP_REASONS,
    Kind,
)

TYPED_SUFFIX: Final = "__v"
#: Control characters (C0 except none, DEL, C1) and bidirectional overrides/isolates.
_CONTROL_RE: Final = r"[\x00-\x1F\x7F-\x9F\u202A-\u202E\u2066-\u2069]"
_RFC3339: Final = "%Y-%m-%dT%H:%M:%S%.f%#z"
_IPV4_RE: Final = r"^((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$"
_IPV6_RE: Final = r"^[0-9A-Fa-f:]{2,39}(%[0-9A-Za-z]+)?$|^[0-9A-Fa-f:]{2,29}:(\d{1,3}\.){3}\d{1,3}$"


def typed(name: str) -> pl.Expr:
    """The typed helper column of field ``name``."""
    return pl.col(name + TYPED_SUFFIX)


def _int_expr(name: str) -> pl.Expr:
    text = pl.col(name).str.strip_chars()
    as_int = text.cast(pl.Int64, strict=False)
    as_float = text.cast(pl.Float64, strict=False)
    integral = as_float.is_finite() & (as_float == as_float.round()) & (as_float.abs() < 9.0e15)
    return pl.coalesce(as_int, pl.when(integral).then(as_float.cast(pl.Int64)))


def _bool_expr(name: str) -> pl.Expr:
    text = pl.col(name).str.strip_chars().str.to_lowercase()
    return pl.when(text == "true").then(True).when(text == "false").then(False).otherwise(None)


def _ts_expr() -> pl.Expr:
    text = pl.col("ts").str.strip_chars()
    digits = text.str.contains(r"^-?\d{1,16}$")
    as_ms = pl.when(digits).then(text.cast(pl.Int64, strict=False))
    as_time = (
        text.str.to_uppercase()
        .str.replace(" ", "T", literal=True)
        .str.to_datetime(format=_RFC3339, strict=False, time_zone="UTC", time_unit="ms")
        .dt.epoch("ms")
    )
    return pl.coalesce(as_ms, as_time)


def typed_columns() -> list[pl.Expr]:
    """Expressions adding ``<field>__v`` typed columns for ints, bools and the timestamp."""
    out: list[pl.Expr] = []
    for f in FIELDS:
        if f.kind is Kind.INT:
            out.append(_int_expr(f.name).alias(f.name + TYPED_SUFFIX))
        elif f.kind is Kind.BOOL:
            out.append(_bool_expr(f.name).alias(f.name + TYPED_SUFFIX))
        elif f.kind is Kind.TIMESTAMP:
            out.append(_ts_expr().alias(f.name + TYPED_SUFFIX))
    return out


def _missing(name: str) -> pl.Expr:
    col = pl.col(name)
    return col.is_null() | (col.str.strip_chars() == "")


def schema_rules(now_ms: int, *, live: bool, retention_ms: int = RETENTION_MS) -> list[tuple[str, pl.Expr]]:
    """All field-level and business rules of §2 as ``(reason, failing mask)`` pairs."""
    rules: list[tuple[str, pl.Expr]] = []
    event_type = pl.col("event_type")
    for f in FIELDS:
        col = pl.col(f.name)
        present = ~_missing(f.name)
        if f.required:
            rules.append((f"{f.name}: missing", _missing(f.name)))
        elif f.required_for:
            rules.append((f"{f.name}: required_for_type", event_type.is_in(f.required_for) & _missing(f.name)))
        rules.append((f"{f.name}: bad_type", col == BAD_TYPE))
        if f.kind is Kind.STRING:
            if f.choices is not None:
                rules.append((f"{f.name}: not_in_enum", present & ~col.is_in(f.choices)))
            else:
                rules.append((f"{f.name}: control_chars", col.str.contains(_CONTROL_RE)))
            if f.max_len is not None and f.name != "market":
                rules.append((f"{f.name}: too_long", col.str.len_chars() > f.max_len))
        elif f.kind is Kind.INT:
            value = typed(f.name)
            rules.append((f"{f.name}: not_integer", present & value.is_null() & (col != BAD_TYPE)))
            lo = f.min_value if f.min_value is not None else -(2**63)
            hi = f.max_value if f.max_value is not None else 2**63 - 1
            rules.append((f"{f.name}: out_of_range", (value < lo) | (value > hi)))
        elif f.kind is Kind.BOOL:
            rules.append((f"{f.name}: not_boolean", present & typed(f.name).is_null() & (col != BAD_TYPE)))
        elif f.kind is Kind.TIMESTAMP:
            ts = typed(f.name)
            rules.append((f"{f.name}: bad_timestamp", present & ts.is_null()))
            rules.append((f"{f.name}: future", ts > now_ms + FUTURE_TOLERANCE_MS))
            if live:
                rules.append((f"{f.name}: too_old", ts < now_ms - retention_ms))
    rules.append(("market: unknown_country", ~_missing("market") & ~pl.col("market").is_in(sorted(COUNTRY_CODES))))
    ip = pl.col("ip_addr")
    rules.append(("ip_addr: not_ip", ~_missing("ip_addr") & ~(ip.str.contains(_IPV4_RE) | ip.str.contains(_IPV6_RE))))
    # business rules
    rules.append(("ms_played: exceeds_duration", typed("ms_played") > typed("track_duration_ms") + DURATION_SLACK_MS))
    playtime = typed("ms_played").fill_null(0) + typed("startup_ms").fill_null(0)
    rules.append(("rebuffer_ms: exceeds_playtime", typed("rebuffer_ms") > playtime))
    rules.append(("tier: ad_not_free_tier", (event_type == "ad") & (pl.col("tier") != "free")))
    return [(reason, mask.fill_null(False)) for reason, mask in rules]


def valid_columns() -> list[pl.Expr]:
    """Expressions producing the ``VALID_SCHEMA`` columns (typed) from a validated raw frame."""
    out: list[pl.Expr] = []
    for f in FIELDS:
        if f.kind is Kind.STRING:
            out.append(pl.col(f.name))
        elif f.name == "skipped":
            inferred = (typed("ms_played") < SKIP_MAX_MS) & pl.col("reason_end").is_in(SKIP_REASONS)
            out.append(pl.coalesce(typed("skipped"), inferred.fill_null(False)).alias("skipped"))
        else:
            out.append(typed(f.name).alias(f.name))
    return out
