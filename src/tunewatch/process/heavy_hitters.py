"""Heavy-hitter selection for high-cardinality dimensions (tracks, artists).

Keeps an exponentially decayed play count per value (in event time) and a member set with hysteresis: a
value joins when it ranks in the top ``k`` and leaves only when it falls below rank ``2k``, so that series
do not flicker in and out of existence. Memory is bounded to ``capacity`` tracked values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import polars as pl


class HeavyHitters:
    """Decayed top-K of one string column."""

    def __init__(self, k: int = 50, half_life_ms: int = 3_600_000, capacity: int = 20_000) -> None:
        self.k = k
        self.half_life_ms = half_life_ms
        self.capacity = capacity
        self._counts = pl.DataFrame(schema={"value": pl.String, "count": pl.Float64})
        self._members: set[str] = set()
        self._t: int | None = None

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
        self._members = top | (self._members & keep)

    def state_dict(self) -> dict[str, Any]:
        """Decayed counts (a frame ``value``/``count``), members and the time of the last update.

        Part of :meth:`MusicDataProcessor.state_dict`, whose layout version covers it.
        """
        return {"counts": self._counts, "members": sorted(self._members), "t": self._t}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume from :meth:`state_dict` (``ValueError`` when the counts frame has another schema)."""
        counts = state["counts"]
        if not isinstance(counts, pl.DataFrame) or counts.schema != self._counts.schema:
            raise ValueError("heavy-hitter state: counts must be a frame of value (String) and count (Float64)")
        self._counts = counts
        self._members = {str(m) for m in state["members"]}
        self._t = None if state["t"] is None else int(state["t"])

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
