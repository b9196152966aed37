"""Mergeable sketches computed as columnar group-bys, for all series of a window at once.

* **Distinct counts** — HyperLogLog (Flajolet et al. 2007, with linear counting for small ranges): each
  event's 64-bit user hash selects one of ``2**p`` registers and a rank (leading zeros + 1); a sketch is the
  max rank per register. Merging two sketches is a per-register max, so minute sketches roll up to hours and
  workers merge exactly.
* **Quantiles** — a log-bucketed histogram with relative accuracy ``alpha`` (the DDSketch mapping): a value
  ``x`` falls in bucket ``ceil(log_gamma(x))``, ``gamma = (1 + alpha) / (1 - alpha)``. Merging is a sum of
  bucket counts; any quantile is within ``alpha`` relative error.

Both are plain Polars aggregations, so one window's sketches for every dimension set cost a few group-bys
instead of one sketch object (and several Python calls) per series.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

import polars as pl

HLL_P: Final = 12
HLL_M: Final = 1 << HLL_P
_HLL_ALPHA: Final = 0.7213 / (1 + 1.079 / HLL_M)
QUANTILE_ALPHA: Final = 0.01
_GAMMA: Final = (1 + QUANTILE_ALPHA) / (1 - QUANTILE_ALPHA)
_LOG_GAMMA: Final = math.log(_GAMMA)
_HASH_SEED: Final = 0x7475_6E65  # fixed so that sketches from different processes merge


def hll_columns(user_col: str = "user_id") -> list[pl.Expr]:
    """Per-event ``hll_reg`` (register index) and ``hll_rank`` columns from the user id."""
    h = pl.col(user_col).hash(seed=_HASH_SEED)
    low_bits = h & pl.lit((1 << (64 - HLL_P)) - 1, dtype=pl.UInt64)  # the bits not used for the register
    return [
        (h // pl.lit(1 << (64 - HLL_P), dtype=pl.UInt64)).cast(pl.UInt16).alias("hll_reg"),
        (low_bits.bitwise_leading_zeros().cast(pl.Int32) - HLL_P + 1).cast(pl.UInt8).alias("hll_rank"),
    ]


def bucket_value(bucket: pl.Expr) -> pl.Expr:
    """Representative value of a log bucket (the inverse of :func:`bucket_column`, within ``alpha``)."""
    return pl.when(bucket <= 0).then(0.0).otherwise(2.0 * (pl.lit(_GAMMA) ** bucket.cast(pl.Float64)) / (_GAMMA + 1.0))


def sorted_bucket_quantile(bucket_col: str, q: float) -> pl.Expr:
    """Quantile ``q`` (lower interpolation) of a bucketed column inside a group-by, equal to :func:`quantiles`
    of the group's histogram, for a frame already sorted by ``bucket_col`` (nulls last).

    The bucket index is monotone in the value, so the quantile of the indices is the index of the quantile; and a
    group-by keeps row order inside each group, so that index is a positional lookup, with no sort per group.
    """
    values = pl.col(bucket_col).drop_nulls()
    n = values.len().cast(pl.Int64)
    rank = ((n - 1).clip(lower_bound=0).cast(pl.Float64) * q).floor().cast(pl.Int64)
    return bucket_value(values.get(rank, null_on_oob=True))


def hll_registers(events: pl.LazyFrame, keys: Sequence[str]) -> pl.LazyFrame:
    """Sketch state: max rank per (keys, register) — the mergeable HyperLogLog of each group."""
    return events.group_by([*keys, "hll_reg"]).agg(pl.col("hll_rank").max())


def hll_estimate(registers: pl.LazyFrame, keys: Sequence[str], name: str = "unique_listeners") -> pl.LazyFrame:
    """Cardinality estimate per group from (merged) registers."""
    est = registers.group_by(list(keys)).agg(
        pl.len().alias("__nnz"),
        (pl.lit(2.0) ** (-pl.col("hll_rank").cast(pl.Float64))).sum().alias("__z"),
    )
    zeros = pl.lit(float(HLL_M)) - pl.col("__nnz").cast(pl.Float64)
    raw = _HLL_ALPHA * HLL_M * HLL_M / (pl.col("__z") + zeros)
    linear = HLL_M * (pl.lit(float(HLL_M)) / zeros).log()
    value = pl.when((raw <= 2.5 * HLL_M) & (zeros > 0)).then(linear).otherwise(raw)
    return est.select([*keys, value.alias(name)])


def merge_hll(registers: pl.LazyFrame, keys: Sequence[str]) -> pl.LazyFrame:
    """Merge register sets (e.g. minutes into an hour): per-register max within each group of ``keys``."""
    return registers.group_by([*keys, "hll_reg"]).agg(pl.col("hll_rank").max())


def bucket_column(value_col: str, name: str = "q_bucket") -> pl.Expr:
    """Per-event log bucket of a non-negative value (values below 1 share bucket 0; a missing value has none)."""
    v = pl.col(value_col).cast(pl.Float64)
    bucket = pl.when(v >= 1.0).then((v.log() / _LOG_GAMMA).ceil()).when(v.is_not_null()).then(0.0)
    return bucket.cast(pl.Int32).alias(name)


def histogram(events: pl.LazyFrame, keys: Sequence[str], bucket_col: str = "q_bucket") -> pl.LazyFrame:
    """Sketch state: count per (keys, bucket) over rows whose bucket is not null."""
    return events.filter(pl.col(bucket_col).is_not_null()).group_by([*keys, bucket_col]).agg(pl.len().alias("count"))


def quantiles(
    hist: pl.LazyFrame, keys: Sequence[str], qs: dict[str, float], bucket_col: str = "q_bucket"
) -> pl.LazyFrame:
    """Quantiles per group from a (merged) histogram; one output column per entry of ``qs``."""
    ordered = hist.sort([*keys, bucket_col]).with_columns(
        pl.col("count").cum_sum().over(list(keys)).alias("__cum"),
        pl.col("count").sum().over(list(keys)).alias("__n"),
    )
    centre = (
        pl.when(pl.col(bucket_col) <= 0)
        .then(0.0)
        .otherwise(2.0 * (pl.lit(_GAMMA) ** pl.col(bucket_col).cast(pl.Float64)) / (_GAMMA + 1.0))
    )
    aggs = [centre.filter(pl.col("__cum") > q * (pl.col("__n") - 1)).first().alias(name) for name, q in qs.items()]
    return ordered.group_by(list(keys)).agg(aggs)
