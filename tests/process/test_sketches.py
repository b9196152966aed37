"""The vectorised HyperLogLog and log-bucket quantile sketches: accuracy and mergeability."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from tunewatch.process.sketches import (
    QUANTILE_ALPHA,
    bucket_column,
    histogram,
    hll_columns,
    hll_estimate,
    hll_registers,
    merge_hll,
    quantiles,
)


def _users(n: int, prefix: str = "u") -> pl.DataFrame:
    return pl.DataFrame({"g": ["x"] * n, "user_id": [f"{prefix}{i}" for i in range(n)]}).with_columns(hll_columns())


@pytest.mark.parametrize("n", [1, 10, 500, 5_000, 50_000])
def test_hll_estimate_close_to_exact(n: int) -> None:
    frame = _users(n)
    est = hll_estimate(hll_registers(frame.lazy(), ["g"]), ["g"]).collect().item(0, "unique_listeners")
    assert abs(est - n) <= max(1.0, 0.05 * n)


def test_hll_merge_equals_union() -> None:
    a = _users(3_000, "a")
    shared = _users(1_000, "a")  # subset of a
    b = _users(2_000, "b")
    regs = pl.concat([hll_registers(f.lazy(), ["g"]).collect() for f in (a, shared, b)])
    merged = merge_hll(regs.lazy(), ["g"])
    est = hll_estimate(merged, ["g"]).collect().item(0, "unique_listeners")
    assert abs(est - 5_000) <= 0.05 * 5_000


def test_quantiles_within_relative_accuracy() -> None:
    rng = np.random.default_rng(3)
    values = rng.lognormal(mean=5.5, sigma=0.8, size=20_000).round()
    frame = pl.DataFrame({"g": ["x"] * values.size, "v": values}).with_columns(bucket_column("v"))
    qs = {"p50": 0.5, "p95": 0.95, "p99": 0.99}
    got = quantiles(histogram(frame.lazy(), ["g"]), ["g"], qs).collect().row(0, named=True)
    for name, q in qs.items():
        exact = float(np.quantile(values, q, method="lower"))
        assert abs(got[name] - exact) <= 2.5 * QUANTILE_ALPHA * exact + 1, name


def test_histograms_merge_by_sum() -> None:
    frame = pl.DataFrame({"g": ["x"] * 1000, "v": list(range(1, 1001))}).with_columns(bucket_column("v"))
    halves = [histogram(frame[i::2].lazy(), ["g"]).collect() for i in range(2)]
    merged = pl.concat(halves).group_by(["g", "q_bucket"]).agg(pl.col("count").sum())
    got = quantiles(merged.lazy(), ["g"], {"p50": 0.5}).collect().item(0, "p50")
    assert abs(got - 500) <= 0.02 * 500
