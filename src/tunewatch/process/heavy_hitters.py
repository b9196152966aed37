"""Heavy-hitter selection for high-cardinality dimensions (tracks, artists).

Keeps an exponentially decayed play count per value (in event time) and a member set with hysteresis: a
value joins when it ranks in the top ``k`` and leaves only when it falls below rank ``2k``, so that series
do not flicker in and out of existence. Memory is bounded to ``capacity`` tracked values.

When a value joins, its rate before it joined (its decayed count before the batch that made it a member, per
minute of the decay's memory, plus one event of prior) is kept while it stays a member: an entity new to the
watched set is judged against what it was (:meth:`HeavyHitters.entry_rates`), not against its first minutes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl


class HeavyHitters:
    """Decayed top-K of one string column.

    >>> import polars as pl
    >>> hh = HeavyHitters(k=2)
    >>> hh.update(pl.Series("track_id", ["a", "a", "a", "b", "b", "c"]), t=0)
    >>> sorted(hh.members)
    ['a', 'b']
    """

    def __init__(self, k: int = 50, half_life_ms: int = 3_600_000, capacity: int = 20_000) -> None:
        self.k = k
        self.half_life_ms = half_life_ms
        self.capacity = capacity
        self._counts = pl.DataFrame(schema={"value": pl.String, "count": pl.Float64})
        self._members: set[str] = set()
        self._t: int | None = None
        self._entry: dict[str, float] = {}  # member → its rate per minute before it joined
        self._t0: int | None = None  # time of the first update: the counts' memory is filled from there

    @property
    def members(self) -> frozenset[str]:
        """Current heavy hitters."""
        return frozenset(self._members)

    def update(self, values: pl.Series, t: int) -> None:
        """Add one batch of observed values (one per event) at event time ``t`` (ms)."""
        if self._t is not None and t > self._t:
            factor = math.pow(0.5, (t - self._t) / self.half_life_ms)
            self._counts = self._counts.with_columns(pl.col("count") * factor)
        self._t = t if self._t is None else max(self._t, t)
        self._t0 = t if self._t0 is None else min(self._t0, t)
        before = self._counts
        fresh = values.drop_nulls().cast(pl.String).value_counts(name="n").rename({values.name: "value"})
        # an outer join adds each value's decayed and fresh counts (the same a + b as summing the two rows);
        # only the ranks that matter are selected, no full sort: values are unique, so the order is total
        merged = self._counts.join(fresh, on="value", how="full", coalesce=True).select(
            "value", (pl.col("count").fill_null(0.0) + pl.col("n").fill_null(0).cast(pl.Float64)).alias("count")
        )
        if merged.height > self.capacity:
            merged = _top(merged, self.capacity)
        self._counts = merged
        ranked = _top(merged, 2 * self.k).get_column("value")
        top = set(ranked.head(self.k).to_list())
        keep = set(ranked.to_list())
        joined = top - self._members
        self._members = top | (self._members & keep)
        elapsed = self._t - self._t0
        if joined and elapsed >= self.half_life_ms // 2:  # before that, the counts say too little of the past
            prior = dict(before.filter(pl.col("value").is_in(sorted(joined))).iter_rows())
            # the minutes of past a decayed count holds: half_life / ln 2 once full, less since the first update
            full_min = self.half_life_ms / 60_000 / math.log(2)
            memory_min = full_min * (1.0 - math.pow(0.5, elapsed / self.half_life_ms))
            for v in joined:
                self._entry[v] = (prior.get(v, 0.0) + 1.0) / memory_min
        self._entry = {v: r for v, r in self._entry.items() if v in self._members}

    def entry_rates(self, values: Sequence[str]) -> np.ndarray:
        """Per value, its rate (events per minute) before it joined the heavy hitters; NaN for non-members."""
        return np.array([self._entry.get(v, np.nan) for v in values], dtype=np.float64)

    def state_dict(self) -> dict[str, Any]:
        """Decayed counts (a frame ``value``/``count``), members and the time of the last update.

        Part of :meth:`MusicDataProcessor.state_dict`, whose layout version covers it.
        """
        return {"counts": self._counts, "members": sorted(self._members), "t": self._t, "entry": dict(self._entry),
                "t0": self._t0}  # fmt: skip

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume from :meth:`state_dict` (``ValueError`` when the counts frame has another schema)."""
        counts = state["counts"]
        if not isinstance(counts, pl.DataFrame) or counts.schema != self._counts.schema:
            raise ValueError("heavy-hitter state: counts must be a frame of value (String) and count (Float64)")
        self._counts = counts
        self._members = {str(m) for m in state["members"]}
        self._t = None if state["t"] is None else int(state["t"])
        self._entry = {str(v): float(r) for v, r in (state.get("entry") or {}).items() if str(v) in self._members}
        t0 = state.get("t0")
        if t0 is None and self._t is not None:  # older states do not say: their counts' memory counts as filled
            t0 = self._t - 8 * self.half_life_ms
        self._t0 = None if t0 is None else int(t0)

    def map_expr(self, column: str, other: str) -> pl.Expr:
        """Expression replacing values outside the heavy hitters by ``other``."""
        members = sorted(self._members)
        col = pl.col(column)
        return pl.when(col.is_in(members)).then(col).when(col.is_null()).then(None).otherwise(pl.lit(other))


def _top(counts: pl.DataFrame, n: int) -> pl.DataFrame:
    """The ``n`` highest counts, ranked by count (descending), ties by value (ascending)."""
    return counts.top_k(n, by=["count", "value"], reverse=[False, True]).sort(
        ["count", "value"], descending=[True, False]
    )
