"""Reference aggregation: one Polars group-by over the raw events per dimension set.

This was the processor's only path; it stays as the straightforward definition the compiled path
(:mod:`tunewatch.process.compiled`) is tested and benchmarked against, and it computes the mergeable sketch
states (HyperLogLog registers, startup histograms) when they are asked for.
"""

from __future__ import annotations

import polars as pl

from tunewatch.process.dimensions import DimensionSet
from tunewatch.process.sketches import histogram, hll_registers, sorted_bucket_quantile
from tunewatch.process.weights import QUANTILES, SUMS
from tunewatch.schema import DIMENSION_FIELDS


def prepare(events: pl.DataFrame) -> pl.LazyFrame:
    """Heavy-hitter-mapped events → categorical keys, sorted by startup bucket (nulls last), materialised once.

    Integer group keys are ~3x faster than strings; the bucket order makes every group's quantiles positional
    lookups (see :func:`~tunewatch.process.sketches.sorted_bucket_quantile`).
    """
    return (
        events.with_columns([pl.col(f).cast(pl.Categorical) for f in DIMENSION_FIELDS])
        .lazy()
        .sort("q_bucket", nulls_last=True)
        .collect()
        .lazy()
    )


def _scoped(events: pl.LazyFrame, d: DimensionSet) -> pl.LazyFrame:
    """The events that belong to a series of ``d`` (every field of the set present)."""
    return events.filter(pl.all_horizontal([pl.col(f).is_not_null() for f in d.fields])) if d.fields else events


def aggregate_reference(events: pl.LazyFrame, dimension_sets: tuple[DimensionSet, ...]) -> list[pl.DataFrame]:
    """Sums, exact distinct listeners and startup quantiles per (window, series) of every dimension set.

    ``events`` comes from :func:`prepare`. One frame per dimension set, with a ``dimset`` column.
    """
    plans = [
        _scoped(events, d)
        .group_by(["window_start", *d.fields])
        .agg(
            *[pl.col(c).sum() for c in SUMS],
            pl.col("user_hash").n_unique().cast(pl.Float64).alias("unique_listeners"),
            *[sorted_bucket_quantile("q_bucket", q).alias(name) for name, q in QUANTILES.items()],
        )
        .with_columns(pl.lit(d.name).alias("dimset"))
        for d in dimension_sets
    ]
    return pl.collect_all(plans)


def sketch_states(events: pl.LazyFrame, dimension_sets: tuple[DimensionSet, ...]) -> dict[str, pl.DataFrame]:
    """Mergeable sketch states per (window, series): ``hll`` registers and ``startup_hist`` bucket counts."""
    hll: list[pl.LazyFrame] = []
    hist: list[pl.LazyFrame] = []
    for d in dimension_sets:
        keys = ["window_start", *d.fields]
        scoped = _scoped(events, d)
        hll.append(hll_registers(scoped, keys).with_columns(pl.lit(d.name).alias("dimset")))
        hist.append(histogram(scoped, keys).with_columns(pl.lit(d.name).alias("dimset")))
    collected = pl.collect_all([*hll, *hist])
    return {
        "hll": pl.concat(collected[: len(hll)], how="diagonal_relaxed"),
        "startup_hist": pl.concat(collected[len(hll) :], how="diagonal_relaxed"),
    }
