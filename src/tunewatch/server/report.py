"""Ingest reports: what one request's events became (accepted, rejected with reasons, duplicates).

Several requests share one pipeline step (see :mod:`tunewatch.server.batcher`); :func:`split_lines_outcome`
attributes that step's validation result back to each request, vectorised over the events.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from tunewatch.ingest.batch import RawBatch
from tunewatch.server.decode import LinesPayload
from tunewatch.validate.reasons import describe
from tunewatch.validate.validator import ValidationResult

MAX_REJECTIONS = 1000  #: rejected events listed per response (the counts are always complete)
MAX_MESSAGES = 20


@dataclass(slots=True)
class IngestReport:
    """What one ingest call did."""

    received: int
    accepted: int
    rejected: int
    duplicates: int
    errors: list[str]  #: human-readable messages for the first rejected events
    rejections: list[dict[str, Any]] = field(default_factory=list)  #: position, event_id, reasons per event

    def to_dict(self) -> dict[str, Any]:
        """JSON form returned by the ingest endpoint."""
        return {
            "received": self.received,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "duplicates": self.duplicates,
            "errors": self.errors,
            "rejections": self.rejections,
        }


def whole_report(result: ValidationResult, kind: str = "index") -> IngestReport:
    """Report of a batch that came from one request (positions are the validator's 1-based row numbers)."""
    rows = result.rejected.head(MAX_REJECTIONS).select("line_no", "event_id", "reasons").to_dicts()
    offset = 1 if kind == "index" else 0
    rejections = [
        {
            kind: (r["line_no"] - offset) if r["line_no"] is not None else None,
            "event_id": r["event_id"],
            "reasons": r["reasons"],
        }
        for r in rows
    ]
    return IngestReport(
        result.received,
        result.accepted,
        result.rejected_count,
        result.duplicates,
        _messages(rejections, kind),
        rejections,
    )


def _messages(rejections: list[dict[str, Any]], kind: str) -> list[str]:
    return [f"{kind} {r[kind]}: " + "; ".join(describe(x) for x in r["reasons"]) for r in rejections[:MAX_MESSAGES]]


def split_lines_outcome(
    batch: RawBatch, result: ValidationResult, payloads: Sequence[LinesPayload]
) -> list[IngestReport]:
    """Split the result of one step over joined NDJSON lines into one report per request (in order)."""
    if result.rejected_count == 0 and result.duplicates == 0:  # the usual case: every event of every request accepted
        return [IngestReport(p.count, p.count, 0, 0, [], []) for p in payloads]
    counts = np.array([p.count for p in payloads], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)])
    n = len(payloads)

    def owner(lines: np.ndarray) -> np.ndarray:
        return np.searchsorted(starts, lines - 1, side="right") - 1

    rej = result.rejected.select("line_no", "event_id", "reasons")
    rej_lines = rej.get_column("line_no").fill_null(0).to_numpy().astype(np.int64)
    rej_owner = owner(rej_lines)
    rejected = np.bincount(rej_owner, minlength=n)[:n]

    # the usual case has no duplicates: every event not rejected was accepted
    accepted = counts - rejected if result.duplicates == 0 else _accepted_per_request(batch, result, rej, owner, n)
    duplicates = np.maximum(counts - accepted - rejected, 0)

    reports = []
    if rej.is_empty():  # plain Python ints: int(numpy scalar) per request costs more than the rest
        return [
            IngestReport(c, a, 0, d, [], [])
            for c, a, d in zip(counts.tolist(), accepted.tolist(), duplicates.tolist(), strict=True)
        ]
    rej = rej.with_columns(pl.Series("owner", rej_owner), pl.Series("local", rej_lines - starts[rej_owner]))
    by_owner = {int(k[0]): g for k, g in rej.group_by("owner")}
    c_l, a_l, r_l, d_l = counts.tolist(), accepted.tolist(), rejected.tolist(), duplicates.tolist()
    for i, p in enumerate(payloads):
        rejections: list[dict[str, Any]] = []
        group = by_owner.get(i)
        if group is not None:
            for r in group.sort("local").head(MAX_REJECTIONS).to_dicts():
                rejections.append(
                    {p.kind: p.position(int(r["local"])), "event_id": r["event_id"], "reasons": r["reasons"]}
                )
        reports.append(IngestReport(c_l[i], a_l[i], r_l[i], d_l[i], _messages(rejections, p.kind), rejections))
    return reports


def _accepted_per_request(
    batch: RawBatch, result: ValidationResult, rej: pl.DataFrame, owner: Callable[[np.ndarray], np.ndarray], n: int
) -> np.ndarray:
    """Accepted events per request: an accepted id counts for the request holding its first valid occurrence."""
    row_lines = (
        np.asarray(batch.line_nos, dtype=np.int64)
        if batch.line_nos is not None
        else np.arange(1, batch.frame.height + 1, dtype=np.int64)
    )
    rows = pl.DataFrame({"event_id": batch.frame.get_column("event_id"), "line": row_lines})
    kept = (
        rows.filter(~pl.col("line").is_in(rej.get_column("line_no").implode()))
        .filter(pl.col("event_id").is_in(result.valid.get_column("event_id").implode()))
        .unique("event_id", keep="first", maintain_order=True)
    )
    return np.bincount(owner(kept.get_column("line").to_numpy()), minlength=n)[:n]
