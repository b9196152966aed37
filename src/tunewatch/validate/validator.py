"""EnterpriseDataValidator: the §2 rules, duplicates and lateness over a batch, in columnar form.

Every event received ends in exactly one of three outcomes: accepted, rejected (with one or more
``field: reason`` codes, kept for quarantine with its raw bytes) or duplicate.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import numpy as np
import polars as pl

from tunewatch.ingest.batch import RawBatch, conform
from tunewatch.schema import FIELDS, RETENTION_MS, VALID_SCHEMA, Kind
from tunewatch.validate.custom_rules import RuleSet, load_rules
from tunewatch.validate.dedup import DEFAULT_DEDUP_HORIZON_MS, DuplicateFilter
from tunewatch.validate.reasons import describe
from tunewatch.validate.rules import (
    ENUM_SUFFIX,
    NOW_COLUMN,
    TYPED_SUFFIX,
    ColumnStats,
    Rule,
    fast_columns,
    lenient_column,
    schema_rules,
    stats_exprs,
    valid_columns,
)
from tunewatch.validate.watermark import DEFAULT_ALLOWED_LATENESS_MS, Watermark

REJECTED_SCHEMA = pl.Schema(
    [
        ("source", pl.String),
        ("line_no", pl.Int64),
        ("event_id", pl.String),
        ("reasons", pl.List(pl.String)),
        ("raw", pl.Binary),
    ]
)


@dataclass(slots=True)
class ValidationResult:
    """Outcome of validating one batch.

    ``valid`` holds the accepted events typed as ``VALID_SCHEMA`` (timestamps in epoch ms, ``skipped`` filled
    in); ``rejected`` one row per rejected event with its reasons and raw bytes. ``watermark`` is the
    event-time watermark after this batch.
    """

    valid: pl.DataFrame
    rejected: pl.DataFrame
    duplicates: int
    watermark: int | None
    received: int
    reason_counts: dict[str, int] = field(default_factory=dict)

    @property
    def accepted(self) -> int:
        """Number of accepted events."""
        return self.valid.height

    @property
    def rejected_count(self) -> int:
        """Number of rejected events."""
        return self.rejected.height

    @property
    def success_rate(self) -> float:
        """Accepted / received (1.0 for an empty batch)."""
        return self.accepted / self.received if self.received else 1.0

    def messages(self, limit: int = 20) -> list[str]:
        """Human-readable rejection messages for the first ``limit`` rejected events."""
        out = []
        for row in self.rejected.head(limit).iter_rows(named=True):
            where = f"{row['source']}:{row['line_no']}" if row["line_no"] is not None else row["source"]
            out.append(f"{where}: " + "; ".join(describe(r) for r in row["reasons"]))
        return out


Events = RawBatch | pl.DataFrame | Sequence[Mapping[str, object]] | bytes


class EnterpriseDataValidator:
    """Validates event batches against the §2 schema and business rules, drops duplicates, flags late events.

    Stateful across batches: it remembers accepted event ids (for ``dedup_horizon_ms`` of event time) and the
    event-time watermark. ``live=True`` also rejects events older than the retention (``too_old``), as live
    ingest must; replay leaves it off so that history of any age can be replayed. ``custom_rules`` adds
    user rules (a YAML file, its text, or a compiled :class:`~tunewatch.validate.custom_rules.RuleSet`).

    The hot path is one pass of cheap casts, whole-column screens that skip every rule which cannot fail in
    this batch, one combined row mask, and exact per-rule reasons only for the rows that mask flags.

    >>> v = EnterpriseDataValidator()
    >>> r = v.validate([{"event_id": "e1", "ts": 1700000000000, "event_type": "ad", "user_id": "u1",
    ...                  "market": "SE", "platform": "web", "tier": "free", "ad_revenue_micros": 1200}])
    >>> (r.accepted, r.rejected_count, r.duplicates)
    (1, 0, 0)
    """

    def __init__(
        self,
        *,
        allowed_lateness_ms: int = DEFAULT_ALLOWED_LATENESS_MS,
        dedup_horizon_ms: int = DEFAULT_DEDUP_HORIZON_MS,
        live: bool = False,
        retention_ms: int = RETENTION_MS,
        clock: Callable[[], float] = time.time,
        custom_rules: RuleSet | str | Path | None = None,
    ) -> None:
        self.live = live
        self.retention_ms = retention_ms
        self.clock = clock
        self.watermark = Watermark(allowed_lateness_ms)
        self.dedup = DuplicateFilter(dedup_horizon_ms)
        self.custom_rules = load_rules(custom_rules) if custom_rules is not None else None
        self.rules: list[Rule] = schema_rules(live=live, retention_ms=retention_ms)
        if self.custom_rules is not None:
            self.rules += self.custom_rules.rules()

    def validate(self, events: Events) -> ValidationResult:
        """Validate a batch: a :class:`RawBatch`, a Polars frame, a list of JSON objects or NDJSON bytes."""
        batch = _as_batch(events)
        now_ms = int(self.clock() * 1000)
        work = batch.frame.with_columns(fast_columns(batch.frame.schema))
        work, stats = _screen(work, batch, now_ms)
        candidates = [rule for rule in self.rules if rule.screen(stats)]

        bad_rows = np.zeros(0, dtype=np.int64)
        reasons = pl.DataFrame(schema={"__row": pl.Int64, "r": pl.List(pl.String)})
        if candidates and work.height:
            work = work.with_columns(pl.lit(now_ms, dtype=pl.Int64).alias(NOW_COLUMN))
            flagged = work.select(pl.any_horizontal([r.detector(stats.text_clean) for r in candidates]))
            rows = flagged.to_series().arg_true()
            if len(rows):
                reasons = _exact_reasons(work, rows, candidates, stats.typed_input)
                bad_rows = reasons.get_column("__row").to_numpy()
        keep = np.ones(work.height, dtype=bool)
        keep[bad_rows] = False
        good_rows = np.flatnonzero(keep) if bad_rows.size else np.arange(work.height, dtype=np.int64)
        ids = work.get_column("event_id")
        ts = work.get_column("ts" + TYPED_SUFFIX).to_numpy()

        # duplicates, then lateness, in arrival order among the schema-valid events
        dup = self.dedup.duplicate_mask(ids.gather(good_rows) if bad_rows.size else ids)
        fresh_rows = good_rows[~dup] if dup.any() else good_rows
        late = self.watermark.late_mask(ts[fresh_rows].astype(np.int64))
        accepted_rows = fresh_rows[~late] if late.any() else fresh_rows
        whole = accepted_rows.size == work.height
        self.dedup.remember(ids if whole else ids.gather(accepted_rows), pl.Series(ts if whole else ts[accepted_rows]))
        self.dedup.evict(self.watermark.value)

        valid = work.select(valid_columns())
        if not whole:
            mask = np.zeros(work.height, dtype=bool)
            mask[accepted_rows] = True
            valid = valid.filter(pl.Series(mask))
        if valid.schema != VALID_SCHEMA:
            valid = valid.cast(dict(VALID_SCHEMA))  # type: ignore[arg-type]
        if late.any():
            late_rows = pl.DataFrame(
                {"__row": fresh_rows[late], "r": [["ts: late"]] * int(late.sum())},
                schema={"__row": pl.Int64, "r": pl.List(pl.String)},
            )
            reasons = pl.concat([reasons, late_rows]).sort("__row")
        rejected = _rejected_frame(batch, reasons)
        return ValidationResult(
            valid=valid,
            rejected=rejected,
            duplicates=int(dup.sum()),
            watermark=self.watermark.value,
            received=batch.received,
            reason_counts=_count_reasons(rejected),
        )


def _exact_reasons(work: pl.DataFrame, rows: pl.Series, rules: list[Rule], typed_input: frozenset[str]) -> pl.DataFrame:
    """``__row`` and reasons ``r`` of the flagged ``rows`` that break at least one rule.

    Each row's verdict is packed into bit codes (one bit per rule, 63 rules per code column), so the per-row work
    is integer arithmetic; the few distinct combinations are then mapped to their lists of reasons.
    """
    needed = sorted({name for rule in rules for name in rule.mask.meta.root_names()} & set(work.columns))
    subset = work.select(needed)[rows]
    text = [name for name in needed if name in typed_input]
    if text:  # exact masks read the text of every field
        subset = subset.with_columns(pl.col(text).cast(pl.String))
    groups = [rules[i : i + 63] for i in range(0, len(rules), 63)]
    codes = subset.select(
        [
            pl.sum_horizontal(
                [r.mask.fill_null(False).cast(pl.Int64) * (1 << bit) for bit, r in enumerate(group)]
            ).alias(f"c{g}")
            for g, group in enumerate(groups)
        ]
    ).with_columns(rows.cast(pl.Int64).alias("__row"))
    code_cols = [f"c{g}" for g in range(len(groups))]
    codes = codes.filter(pl.any_horizontal(pl.col(c) != 0 for c in code_cols))
    combos = codes.select(code_cols).unique()
    lists = []
    for combo in combos.iter_rows():
        found: list[str] = []
        for group, code in zip(groups, combo, strict=True):
            for bit, rule in enumerate(group):
                if code >> bit & 1 and rule.reason not in found:
                    found.append(rule.reason)
        lists.append(found)
    table = combos.with_columns(pl.Series("r", lists, dtype=pl.List(pl.String)))
    return codes.join(table, on=code_cols, how="left", maintain_order="left").select("__row", "r")


def _screen(work: pl.DataFrame, batch: RawBatch, now_ms: int) -> tuple[pl.DataFrame, ColumnStats]:
    """Whole-column statistics; int/timestamp columns with non-integer text get the lenient parse first."""
    raw_nulls = dict(zip(work.columns, work.null_count().row(0), strict=True))
    lenient = [
        f for f in FIELDS
        if f.kind in (Kind.INT, Kind.TIMESTAMP) and raw_nulls[f.name + TYPED_SUFFIX] > raw_nulls[f.name]
    ]  # fmt: skip
    if lenient:
        work = work.with_columns([lenient_column(f) for f in lenient])
        raw_nulls.update(zip(work.columns, work.null_count().row(0), strict=True))
    schema = work.schema
    typed_input = frozenset(f.name for f in FIELDS if schema[f.name] != pl.String)
    stats = ColumnStats(rows=work.height, text_clean=batch.text_clean, now_ms=now_ms, typed_input=typed_input)
    for name, nulls in raw_nulls.items():
        base, suffix = name[:-3], name[-3:]
        if suffix in (TYPED_SUFFIX, ENUM_SUFFIX):
            stats.work_nulls[base] = nulls
        else:
            stats.raw_nulls[name] = nulls
    if work.height:
        for key, value in work.select(stats_exprs()).row(0, named=True).items():
            kind, _, name = key.partition(":")
            {"min": stats.minimum, "max": stats.maximum, "lmin": stats.len_min, "lmax": stats.len_max}[kind][name] = (
                value
            )
    return work, stats


def _count_reasons(rejected: pl.DataFrame) -> dict[str, int]:
    if not rejected.height:
        return {}
    counts = rejected.select(pl.col("reasons").explode().value_counts(sort=True)).unnest("reasons")
    return dict(zip(counts.get_column("reasons").to_list(), counts.get_column("count").to_list(), strict=True))


def _rejected_frame(batch: RawBatch, reasons: pl.DataFrame) -> pl.DataFrame:
    """One row per rejected event: decoded rows with their reasons, then the undecodable lines."""
    if not reasons.height and not batch.undecodable:
        return pl.DataFrame(schema=REJECTED_SCHEMA)
    rows = reasons.get_column("__row").to_list()
    undecodable = batch.undecodable
    ids = batch.frame.get_column("event_id").gather(rows) if rows else pl.Series([], dtype=pl.String)
    data = {
        "source": [batch.source] * (len(rows) + len(undecodable)),
        "line_no": batch.lines_of(rows) + [u.line_no for u in undecodable],
        "event_id": pl.concat([ids, pl.Series([None] * len(undecodable), dtype=pl.String)]),
        "reasons": pl.concat(
            [reasons.get_column("r"), pl.Series([[u.reason] for u in undecodable], dtype=pl.List(pl.String))]
        ),
        "raw": batch.raws_of(rows) + [u.raw for u in undecodable],
    }
    return pl.DataFrame(data, schema=REJECTED_SCHEMA)


def _as_batch(events: Events) -> RawBatch:
    if isinstance(events, RawBatch):
        return events
    if isinstance(events, pl.DataFrame):
        return RawBatch(frame=conform(events), source="dataframe")
    if isinstance(events, bytes | bytearray):
        from tunewatch.ingest.readers import parse_ndjson_bytes

        return parse_ndjson_bytes(bytes(events), source="bytes")
    records = [dict(e) for e in events]
    batch = RawBatch.from_records(records, source="api")
    batch.raw_lines = [msgspec.json.encode(r) for r in records]
    return batch
