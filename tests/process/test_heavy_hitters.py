"""HeavyHitters: decayed counts, bounded memory and hysteresis, against a plain-Python model of the same rules."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from tunewatch.process.heavy_hitters import HeavyHitters


class _Model:
    """The documented rules with dicts and a full sort: decay, add, keep the top ``capacity``, hysteresis."""

    def __init__(self, k: int, half_life_ms: int, capacity: int) -> None:
        self.k, self.half_life_ms, self.capacity = k, half_life_ms, capacity
        self.counts: dict[str, float] = {}
        self.members: set[str] = set()
        self.t: int | None = None

    def update(self, values: list[str | None], t: int) -> None:
        if self.t is not None and t > self.t:
            factor = math.pow(0.5, (t - self.t) / self.half_life_ms)
            self.counts = {v: c * factor for v, c in self.counts.items()}
        self.t = t if self.t is None else max(self.t, t)
        fresh: dict[str, int] = {}
        for v in values:
            if v is not None:
                fresh[v] = fresh.get(v, 0) + 1
        for v, n in fresh.items():
            self.counts[v] = self.counts.get(v, 0.0) + float(n)
        ranked = sorted(self.counts, key=lambda v: (-self.counts[v], v))[: self.capacity]
        self.counts = {v: self.counts[v] for v in ranked}
        top, keep = set(ranked[: self.k]), set(ranked[: 2 * self.k])
        self.members = top | (self.members & keep)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    k=st.integers(1, 4),
    capacity=st.integers(1, 30),
    batches=st.integers(1, 8),
)
def test_members_and_counts_follow_the_model(seed: int, k: int, capacity: int, batches: int) -> None:
    rng = np.random.default_rng(seed)
    hh = HeavyHitters(k=k, half_life_ms=60_000, capacity=capacity)
    model = _Model(k, 60_000, capacity)
    t = 0
    for _ in range(batches):
        t += int(rng.integers(0, 120_000))
        n = int(rng.integers(0, 60))
        values: list[str | None] = [None if rng.random() < 0.1 else f"v{int(rng.zipf(1.5)) % 40}" for _ in range(n)]
        hh.update(pl.Series("track_id", values, dtype=pl.String), t)
        model.update(values, t)
        assert hh.members == model.members
    counts = dict(zip(*hh._counts.select("value", "count").to_dict(as_series=False).values(), strict=True))
    assert counts == model.counts


def test_map_expr_folds_non_members_and_keeps_nulls() -> None:
    hh = HeavyHitters(k=1)
    hh.update(pl.Series("track_id", ["hit", "hit", "rare"]), 0)
    frame = pl.DataFrame({"track_id": ["hit", "rare", None]})
    assert frame.select(hh.map_expr("track_id", "_other")).to_series().to_list() == ["hit", "_other", None]
