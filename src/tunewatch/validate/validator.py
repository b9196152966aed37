"""EnterpriseDataValidator: the §2 rules, duplicates and lateness over a batch, in columnar form.

Every event received ends in exactly one of three outcomes: accepted, rejected (with one or more
``field: reason`` codes, kept for quarantine with its raw bytes) or duplicate.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import msgspec
import numpy as np
import polars as pl

from tunewatch.ingest.batch import RawBatch, conform
from tunewatch.schema import RETENTION_MS, VALID_SCHEMA
from tunewatch.validate.dedup import DEFAULT_DEDUP_HORIZON_MS, DuplicateFilter
from tunewatch.validate.reasons import describe
from tunewatch.validate.rules import TYPED_SUFFIX, schema_rules, typed_columns, valid_columns
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
    ingest must; replay leaves it off so that history of any age can be replayed.

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
    ) -> None:
        self.live = live
        self.retention_ms = retention_ms
        self.clock = clock
        self.watermark = Watermark(allowed_lateness_ms)
        self.dedup = DuplicateFilter(dedup_horizon_ms)

    def validate(self, events: Events) -> ValidationResult:
        """Validate a batch: a :class:`RawBatch`, a Polars frame, a list of JSON objects or NDJSON bytes."""
        batch = _as_batch(events)
        raw = batch.frame
        now_ms = int(self.clock() * 1000)
        rules = schema_rules(now_ms, live=self.live, retention_ms=self.retention_ms)
        work = raw.with_columns(typed_columns())
        bad_any = pl.any_horizontal([mask for _, mask in rules]) if rules else pl.lit(False)
        work = work.with_columns(bad_any.alias("__bad"), pl.int_range(pl.len(), dtype=pl.Int64).alias("__row"))
        bad = work.filter(pl.col("__bad"))
        reasons = bad.select(
            pl.col("__row"),
            pl.concat_list([pl.when(mask).then(pl.lit(reason)) for reason, mask in rules]).list.drop_nulls().alias("r"),
        )
        good = work.filter(~pl.col("__bad"))

        # duplicates, then lateness, in arrival order among the schema-valid events
        dup = self.dedup.duplicate_mask(good.get_column("event_id")).to_numpy()
        fresh = good.filter(pl.Series(~dup))
        late = self.watermark.late_mask(fresh.get_column("ts" + TYPED_SUFFIX).to_numpy().astype(np.int64))
        accepted = fresh.filter(pl.Series(~late))
        late_rows = fresh.filter(pl.Series(late)).select(
            "__row", pl.lit(["ts: late"], dtype=pl.List(pl.String)).alias("r")
        )
        self.dedup.remember(accepted.get_column("event_id"), accepted.get_column("ts" + TYPED_SUFFIX))
        self.dedup.evict(self.watermark.value)

        valid = accepted.select(valid_columns()).cast(dict(VALID_SCHEMA))  # type: ignore[arg-type]
        rejected = _rejected_frame(batch, pl.concat([reasons, late_rows]).sort("__row"))
        counts = Counter(r for rs in rejected.get_column("reasons").to_list() for r in rs)
        return ValidationResult(
            valid=valid,
            rejected=rejected,
            duplicates=int(dup.sum()),
            watermark=self.watermark.value,
            received=batch.received,
            reason_counts=dict(counts),
        )


def _rejected_frame(batch: RawBatch, reasons: pl.DataFrame) -> pl.DataFrame:
    """One row per rejected event: decoded rows with their reasons, then the undecodable lines."""
    rows = reasons.get_column("__row").to_list()
    ids = batch.frame.get_column("event_id").gather(rows).to_list() if rows else []
    line_of = getattr(batch, "line_of", None)
    line_nos: list[int | None]
    if batch.line_nos is not None:
        line_nos = [batch.line_nos[r] for r in rows]
    elif line_of is not None:
        line_nos = [line_of(r) for r in rows]
    else:
        line_nos = [r + 1 for r in rows]
    data = {
        "source": [batch.source] * len(rows) + [batch.source] * len(batch.undecodable),
        "line_no": line_nos + [u.line_no for u in batch.undecodable],
        "event_id": ids + [None] * len(batch.undecodable),
        "reasons": reasons.get_column("r").to_list() + [[u.reason] for u in batch.undecodable],
        "raw": [batch.raw_of(r) for r in rows] + [u.raw for u in batch.undecodable],
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
