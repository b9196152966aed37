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
    hh = HeavyHitters(k=k, half_life_ms=60_000, capacity=capacity, surge_p=0.0)  # by rank only, as the model
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


T0 = 1_700_000_000_000
MIN = 60_000


def _minutes(hh: HeavyHitters, start: int, minutes: int, plays: dict[str, float]) -> int:
    """Feed ``minutes`` one-minute batches from minute ``start``: each value ``plays[v]`` times a minute (a
    fraction: once every ``1 / plays[v]`` minutes). Returns the next minute."""
    for m in range(start, start + minutes):
        values = [v for v, rate in plays.items()
                  for _ in range(int(rate) if rate >= 1 else int(m % round(1 / rate) == 0))]  # fmt: skip
        hh.update(pl.Series("artist_id", values, dtype=pl.String), T0 + m * MIN)
    return start + minutes


def test_an_obscure_value_surging_joins_in_the_minute_its_surge_starts_and_leaves_once_it_has_faded() -> None:
    """An artist played once every 30 minutes, far below the top 2, gets 5 plays in a minute: improbable at its own
    rate, it is watched from that minute (its rate before: about 1/30 a minute), however far from the top 2 its
    decayed count still is; it stays while it runs at more than twice that rate, and leaves hours after the surge."""
    hh = HeavyHitters(k=2)
    base = {"a": 20.0, "b": 10.0, "c": 5.0, "obscure": 1 / 30}
    m = _minutes(hh, 0, 120, base)
    assert "obscure" not in hh.members
    m = _minutes(hh, m, 1, {**base, "obscure": 5.0})
    assert "obscure" in hh.members and "c" not in hh.members
    assert 0.01 < hh.entry_rates(["obscure"])[0] < 0.1
    m = _minutes(hh, m, 60, {**base, "obscure": 5.0})
    assert "obscure" in hh.members
    restored = HeavyHitters(k=2)
    restored.load_state_dict(hh.state_dict())
    assert restored.members == hh.members
    _minutes(hh, m, 600, {"a": 20.0, "b": 10.0, "c": 5.0, "d": 2.0, "e": 1.0})  # it falls below the top 4
    assert "obscure" not in hh.members


def test_a_value_playing_at_its_usual_rate_does_not_join_by_surge() -> None:
    """Three plays in a minute of an artist played about once a minute is no surge: it stays out of the top 2."""
    hh = HeavyHitters(k=2)
    base = {"a": 20.0, "b": 10.0, "usual": 1.0}
    m = _minutes(hh, 0, 120, base)
    _minutes(hh, m, 1, {**base, "usual": 3.0})
    assert "usual" not in hh.members


def test_the_rate_before_joining_counts_only_the_memory_the_counts_hold() -> None:
    """A track played once every 4 minutes joins in a batch of 200 minutes (a replay's batch, whose plays are not
    in the counts before it, decayed over its span): its rate before is read over the memory left (a few minutes),
    about its real 0.25 a minute; over the full memory it read as 0.03 (a false surge from its first minutes)."""
    hh = HeavyHitters(k=1, surge_p=0.0)
    m = _minutes(hh, 0, 120, {"a": 2.0, "t": 0.25})
    hh.update(pl.Series("artist_id", ["t"] * 50, dtype=pl.String), T0 + (m + 199) * MIN)
    assert "t" in hh.members
    assert 0.15 < hh.entry_rates(["t"])[0] < 0.6
