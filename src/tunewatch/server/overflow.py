"""Rejected events kept one by one up to a limit per request; the rest of a request in one summary row.

A request of a hundred thousand bad lines would otherwise add a hundred thousand quarantine rows. Past
``limit`` rows of one request, one more row stands for the rest: reason ``request: quarantine_overflow``, the
line of the first one left out, and as raw bytes a JSON object with how many were left out. The counts in the
ingest answer and in ``/metrics`` stay complete. Vectorised (Polars), whatever the number of rows.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from tunewatch.validate.validator import REJECTED_SCHEMA

OVERFLOW_REASON = "request: quarantine_overflow"


def cap_per_request(rejected: pl.DataFrame, owners: np.ndarray, limit: int) -> tuple[pl.DataFrame, int]:
    """Rows to quarantine (at most ``limit`` per owner, plus one summary row per owner over it) and how many
    rejected events the summaries stand for. ``owners`` gives each row's request."""
    if rejected.height <= limit:
        return rejected, 0
    ranked = rejected.with_columns(pl.Series("_owner", owners, dtype=pl.Int64)).with_columns(
        pl.int_range(pl.len()).over("_owner").alias("_rank")
    )
    kept = ranked.filter(pl.col("_rank") < limit)
    over = (
        ranked.filter(pl.col("_rank") >= limit)
        .group_by("_owner", maintain_order=True)
        .agg(pl.len().alias("_n"), pl.col("line_no").first(), pl.col("source").first())
    )
    omitted = int(over.get_column("_n").sum())
    summary = over.select(
        pl.col("source"),
        pl.col("line_no"),
        pl.lit(None, dtype=pl.String).alias("event_id"),
        pl.lit([OVERFLOW_REASON], dtype=pl.List(pl.String)).alias("reasons"),
        pl.format('{{"quarantine_overflow": {}, "limit_per_request": {}}}', pl.col("_n"), pl.lit(limit))
        .cast(pl.Binary)
        .alias("raw"),
    )
    rows = pl.concat([kept.select(REJECTED_SCHEMA.names()), summary.cast(REJECTED_SCHEMA)], how="vertical")
    return rows, omitted
