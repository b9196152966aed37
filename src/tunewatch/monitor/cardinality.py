"""Label-cardinality guards: keep the number of Prometheus series bounded whatever the input stream holds.

Two policies, both folding the values they refuse into :data:`OTHER`:

- :class:`CappedLabel` admits the first ``max_values`` distinct values (for reasons, queues, alert names:
  small sets that are bounded by configuration but must not explode on a bug or hostile input);
- :class:`TopNLabel` labels only the ``top_n`` values with the largest cumulative volume (markets), and
  never emits more than ``max_values`` distinct values over the process lifetime, so that churn in the
  ranking cannot grow the series count without bound either.
"""

from __future__ import annotations

from typing import Final

import polars as pl

#: The label value that stands for every value a guard refuses.
OTHER: Final = "_other"


class CappedLabel:
    """First-come admission of at most ``max_values`` distinct label values; later ones become ``_other``.

    >>> guard = CappedLabel(max_values=2)
    >>> [guard(v) for v in ("a", "b", "c", "a")]
    ['a', 'b', '_other', 'a']
    """

    def __init__(self, max_values: int) -> None:
        if max_values < 1:
            raise ValueError(f"max_values must be >= 1, got {max_values}")
        self.max_values = max_values
        self._admitted: set[str] = set()

    def __call__(self, value: str) -> str:
        """The label to use for ``value``."""
        if value in self._admitted:
            return value
        if len(self._admitted) < self.max_values:
            self._admitted.add(value)
            return value
        return OTHER

    @property
    def admitted(self) -> frozenset[str]:
        """Values that keep their own label."""
        return frozenset(self._admitted)


class TopNLabel:
    """Labels only the ``top_n`` heaviest values by cumulative volume; the rest are folded into ``_other``.

    The ranking is recomputed on every :meth:`update`. A value that has been emitted once may come back
    later; a value never emitted is admitted only while fewer than ``max_values`` distinct values have ever
    been emitted (the hard cap on label sets). At most ``max_tracked`` distinct values are counted at all.

    >>> guard = TopNLabel(top_n=2, max_values=3)
    >>> guard.update(pl.DataFrame({"market": ["BR", "US", "SE"], "events": [5.0, 9.0, 1.0]}), "market", "events")
    set()
    >>> sorted(guard.admitted)
    ['BR', 'US']
    >>> guard.fold(pl.DataFrame({"market": ["BR", "SE"]}), "market")["market"].to_list()
    ['BR', '_other']
    """

    def __init__(self, top_n: int = 20, *, max_values: int = 50, max_tracked: int = 10_000) -> None:
        if top_n < 1 or max_values < top_n:
            raise ValueError(f"need 1 <= top_n <= max_values, got top_n={top_n}, max_values={max_values}")
        self.top_n = top_n
        self.max_values = max_values
        self.max_tracked = max_tracked
        self._volume: dict[str, float] = {}
        self._emitted: set[str] = set()
        self._admitted: frozenset[str] = frozenset()

    @property
    def admitted(self) -> frozenset[str]:
        """Values that currently keep their own label."""
        return self._admitted

    @property
    def emitted(self) -> frozenset[str]:
        """Every value ever admitted (at most ``max_values``)."""
        return frozenset(self._emitted)

    def update(self, frame: pl.DataFrame, column: str, volume: str) -> set[str]:
        """Add one batch's volume per value (``frame`` may hold many rows per value); re-rank.

        Returns the values that lost their label (the caller removes their series).
        """
        if frame.is_empty():
            return set()
        totals = frame.group_by(column).agg(pl.col(volume).sum()).drop_nulls(column)
        for value, amount in totals.iter_rows():  # one row per distinct value, not per event
            if value in self._volume or len(self._volume) < self.max_tracked:
                self._volume[value] = self._volume.get(value, 0.0) + float(amount or 0.0)
        return self._rerank()

    def _rerank(self) -> set[str]:
        ranked = sorted(self._volume.items(), key=lambda kv: (-kv[1], kv[0]))
        chosen: list[str] = []
        for value, _ in ranked:
            if len(chosen) == self.top_n:
                break
            if value in self._emitted or len(self._emitted) < self.max_values:
                self._emitted.add(value)
                chosen.append(value)
        previous, self._admitted = self._admitted, frozenset(chosen)
        return set(previous - self._admitted)

    def expr(self, column: str) -> pl.Expr:
        """Polars expression mapping ``column`` to its label (``_other`` unless admitted)."""
        return (
            pl.when(pl.col(column).is_in(sorted(self._admitted)))
            .then(pl.col(column))
            .otherwise(pl.lit(OTHER))
            .alias(column)
        )

    def fold(self, frame: pl.DataFrame, column: str) -> pl.DataFrame:
        """``frame`` with ``column`` mapped to labels (vectorised)."""
        return frame.with_columns(self.expr(column))
