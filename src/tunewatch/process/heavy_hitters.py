"""Heavy-hitter selection for high-cardinality dimensions (tracks, artists).

Keeps an exponentially decayed play count per value (in event time) and a member set with hysteresis: a
value joins when it ranks in the top ``k`` and leaves only when it falls below rank ``2k``, so that series
do not flicker in and out of existence. Memory is bounded to ``capacity`` tracked values.

When a value joins, its rate before it joined (its decayed count before the batch that made it a member, per
minute of the decay's memory, plus one event of prior) is kept while it stays a member: an entity new to the
watched set is judged against what it was (:meth:`HeavyHitters.entry_rates`), not against its first minutes.

A value also joins, whatever its rank, when its plays in one batch are improbable at its own rate before it
(the Poisson upper tail below ``surge_p``): a previously obscure artist streamed by a bot farm enters the
watched set in the batch its surge begins in. It stays while it runs at more than twice its rate before it
joined (or ranks in the top ``2k``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl
from scipy import special


class HeavyHitters:
    """Decayed top-K of one string column.

    >>> import polars as pl
    >>> hh = HeavyHitters(k=2)
    >>> hh.update(pl.Series("track_id", ["a", "a", "a", "b", "b", "c"]), t=0)
    >>> sorted(hh.members)
    ['a', 'b']
    """

    def __init__(
        self, k: int = 50, half_life_ms: int = 3_600_000, capacity: int = 20_000, surge_p: float = 1e-6
    ) -> None:
        self.k = k
        self.half_life_ms = half_life_ms
        self.capacity = capacity
        #: a value outside the top ``k`` joins when its plays in a batch are this improbable (Poisson upper tail)
        #: at its own rate before the batch: an obscure artist pushed by a bot farm is watched from the batch its
        #: surge starts in, not once its decayed count has climbed into the top ``k`` (10-20 minutes later)
        self.surge_p = surge_p
        self._counts = pl.DataFrame(schema={"value": pl.String, "count": pl.Float64})
        self._members: set[str] = set()
        self._t: int | None = None
        self._entry: dict[str, float] = {}  # member → its rate per minute before it joined
        self._surged: set[str] = set()  # members that joined by a surge (not by rank)
        self._t0: int | None = None  # time of the first update: the counts' memory is filled from there

    @property
    def members(self) -> frozenset[str]:
        """Current heavy hitters."""
        return frozenset(self._members)

    def update(self, values: pl.Series, t: int) -> None:
        """Add one batch of observed values (one per event) at event time ``t`` (ms: the newest window's start;
        the batch holds the plays since the previous update's ``t``)."""
        gap = 0 if self._t is None else max(t - self._t, 0)  # the span of this batch's plays, not in the counts yet
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
        elapsed = self._t - self._t0
        warm = elapsed >= self.half_life_ms // 2  # before that, the counts say too little of the past
        memory_min = self._memory_minutes(gap, elapsed)
        surging = self._surging(before, fresh, memory_min, max(gap / 60_000, 1.0)) if warm else set()
        self._surged = (self._surged & self._members | surging) - top
        joined = (top | surging) - self._members
        self._members = top | surging | (self._members & (keep | self._still_surging(merged)))
        if joined and warm:
            prior = dict(before.filter(pl.col("value").is_in(sorted(joined))).iter_rows())
            for v in joined:
                self._entry[v] = (prior.get(v, 0.0) + 1.0) / memory_min
        self._entry = {v: r for v, r in self._entry.items() if v in self._members}
        self._surged &= self._members

    def _memory_minutes(self, gap: int, elapsed: int) -> float:
        """The minutes of past the decayed counts before a batch hold: half_life / ln 2 once full, less since the
        first update, and less the batch's span ``gap`` (its plays are not in them, and they were decayed over it:
        a replay batch of 100 minutes leaves a third of the memory, and dividing by all of it read a track of
        0.25 plays a minute as 0.07, a false surge from its first watched minutes). At least one minute."""
        hl = self.half_life_ms
        held = math.pow(0.5, min(gap, elapsed) / hl) - math.pow(0.5, elapsed / hl)
        return max(self._full_memory_minutes * held, 1.0)

    def _surging(self, before: pl.DataFrame, fresh: pl.DataFrame, memory_min: float, minutes: float) -> set[str]:
        """Values outside the members whose plays in this batch (``minutes`` long) are improbable at their own
        rate before it (decayed count plus one event, per minute of memory): Poisson upper tail below
        :attr:`surge_p`; at most ``k`` of them, the most played first."""
        if fresh.is_empty() or self.surge_p <= 0:
            return set()
        outside = fresh.filter(~pl.col("value").is_in(sorted(self._members))).join(before, on="value", how="left")
        if outside.is_empty():
            return set()
        n = outside.get_column("n").cast(pl.Float64).to_numpy()
        lam = (outside.get_column("count").fill_null(0.0).to_numpy() + 1.0) / memory_min * minutes
        tail = special.pdtrc(n - 1.0, lam)  # P(X >= n)
        hits = outside.filter(pl.Series(tail < self.surge_p))
        return set(hits.top_k(self.k, by=["n", "value"], reverse=[False, True]).get_column("value").to_list())

    def _still_surging(self, counts: pl.DataFrame) -> set[str]:
        """The surge-joined members that still run at more than twice their rate before they joined (their decayed
        count per minute of full memory): they stay watched beyond the top ``2k`` until their surge has faded."""
        if not self._surged:
            return set()
        rows = counts.filter(pl.col("value").is_in(sorted(self._surged)))
        return {v for v, c in rows.iter_rows() if c / self._full_memory_minutes > 2.0 * self._entry.get(v, 0.0)}

    @property
    def _full_memory_minutes(self) -> float:
        """The minutes of past a filled decayed count holds: half_life / ln 2."""
        return self.half_life_ms / 60_000 / math.log(2)

    def entry_rates(self, values: Sequence[str]) -> np.ndarray:
        """Per value, its rate (events per minute) before it joined the heavy hitters; NaN for non-members."""
        return np.array([self._entry.get(v, np.nan) for v in values], dtype=np.float64)

    def state_dict(self) -> dict[str, Any]:
        """Decayed counts (a frame ``value``/``count``), members and the time of the last update.

        Part of :meth:`MusicDataProcessor.state_dict`, whose layout version covers it.
        """
        return {"counts": self._counts, "members": sorted(self._members), "t": self._t, "entry": dict(self._entry),
                "t0": self._t0, "surged": sorted(self._surged)}  # fmt: skip

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
        self._surged = {str(v) for v in state.get("surged") or []} & self._members

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
