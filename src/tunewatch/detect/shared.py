"""One detector stepping the series of several metrics at once, behind one view per metric.

A detector call costs a few hundred array operations whatever the number of series it is given (0.2–0.6 ms for
the robust detector), so stepping each watched metric's detector once per window made replay cost follow windows,
not events: at 185 events/min, 16 calls a window on a few dozen series each. Metrics whose detectors have the
same configuration (the robust detector with the same noise model and parameters) can share one detector: each
metric's series are rows of it (:class:`MetricView` maps the metric's series ids to rows), and one call per
window steps the series of all of them (:func:`step_together`). Every operation of the robust detector is per
series, so the results are those of separate detectors, bit for bit; each metric's :meth:`MetricView.state_dict`
is the state a separate detector would have (checkpoints are unchanged).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np

from tunewatch.detect.base import Detection, FloatArray, IntArray, VectorDetector
from tunewatch.detect.robust import RobustLevelDetector

_OPTIONAL = ("source", "run_ms", "evidence_weight", "evidence_value", "evidence_expected", "evidence_excess",
             "evidence_points")  # fmt: skip


def share_key(detector: VectorDetector) -> Hashable | None:
    """What detectors must have in common to share one (None: this one steps alone).

    Only the robust detector shares (its state is per series, arrays indexed by series id); two of them share
    when every parameter is equal.
    """
    if type(detector) is not RobustLevelDetector:
        return None
    params = tuple(sorted((k, v) for k, v in vars(detector).items() if not k.startswith("_")))
    return (RobustLevelDetector, params)


class SharedDetector:
    """The detector the views of several metrics share, and how many of its rows are handed out.

    >>> shared = SharedDetector(RobustLevelDetector(noise="poisson"))
    >>> shared.allocate(2).tolist(), shared.allocate(1).tolist(), shared.rows
    ([0, 1], [2], 3)
    """

    def __init__(self, detector: RobustLevelDetector) -> None:
        self.detector = detector
        self.rows = 0

    def allocate(self, count: int) -> IntArray:
        """``count`` fresh rows (zero state: new series)."""
        rows = np.arange(self.rows, self.rows + count, dtype=np.int64)
        self.rows += count
        return rows


class MetricView(VectorDetector):
    """One metric's detector: its series ids are rows of a :class:`SharedDetector`, given in order of first use.

    >>> shared = SharedDetector(RobustLevelDetector(noise="poisson"))
    >>> make = lambda: RobustLevelDetector(noise="poisson")
    >>> plays, streams = MetricView(shared, make), MetricView(shared, make)
    >>> ids = np.array([0, 1])
    >>> plays.rows(ids).tolist(), streams.rows(ids).tolist()  # each metric's series 0 and 1, on rows of one detector
    ([0, 1], [2, 3])
    >>> plays_out, streams_out = step_together(0, [(plays, ids, np.array([100.0, 5.0]), np.ones(2)),
    ...                                            (streams, ids, np.array([80.0, 4.0]), np.ones(2))])
    >>> len(plays_out.score), len(streams_out.score)
    (2, 2)
    """

    def __init__(self, shared: SharedDetector, make: Callable[[], VectorDetector]) -> None:
        self.shared = shared
        self.make = make  # a fresh detector of the same configuration (to read a saved state's layout)
        self.name = shared.detector.name
        self.version = shared.detector.version
        self._rows = np.zeros(0, dtype=np.int64)  # series id -> row

    def rows(self, ids: IntArray) -> IntArray:
        """The rows of series ``ids``, new series getting fresh rows."""
        if ids.size and int(ids.max()) >= self._rows.size:
            extra = int(ids.max()) + 1 - self._rows.size
            self._rows = np.concatenate([self._rows, self.shared.allocate(extra)])
        return self._rows[ids]

    def step(self, t: int, ids: IntArray, values: FloatArray, weights: FloatArray) -> Detection:
        """Score and learn one time step of this metric's series ``ids``."""
        return self.shared.detector.step(t, self.rows(ids), values, weights)

    def step_many(self, ids: IntArray, values: FloatArray, weights: FloatArray, starts: IntArray) -> Detection:
        """Several time steps of this metric's series in one call (see :meth:`RobustLevelDetector.step_many`)."""
        return self.shared.detector.step_many(self.rows(ids), values, weights, starts)

    def seed(self, ids: IntArray, levels: FloatArray) -> None:
        """Start new series warm (see :meth:`RobustLevelDetector.seed`)."""
        self.shared.detector.seed(self.rows(ids), levels)

    def state_dict(self) -> dict[str, Any]:
        """This metric's series' state, as a detector of its own would save it."""
        full = self.shared.detector.state_dict()
        size = np.asarray(full["level"]).size
        rows = self._rows[self._rows < size]  # series never stepped have no state yet (as in their own detector)
        return {k: v[..., rows] if _per_series(v, size) else v for k, v in full.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state saved by a detector of this configuration (or by :meth:`state_dict`): series ``i`` of
        the saved state becomes this metric's series ``i``, on fresh rows."""
        own = self.make()
        own.load_state_dict(state)  # the detector's own checks and conversions of older layouts
        saved = own.state_dict()
        count = np.asarray(saved["level"]).size
        self._rows = self.shared.allocate(count)
        self.shared.detector.seed(self._rows, np.zeros(count))  # grows the shared arrays to cover the new rows
        full = self.shared.detector.state_dict()
        size = np.asarray(full["level"]).size
        for k, v in saved.items():
            if _per_series(v, count) and _per_series(full[k], size):
                full[k][..., self._rows] = v
        self.shared.detector.load_state_dict(full)


def _per_series(value: object, size: int) -> bool:
    return isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[-1] == size


def step_together(t: int, parts: Sequence[tuple[MetricView, IntArray, FloatArray, FloatArray]]) -> list[Detection]:
    """One step of the shared detector for the series of several views (all sharing it); a detection per part."""
    one = [(view, ids, v, w, np.array([0, ids.size], dtype=np.int64)) for view, ids, v, w in parts]
    return step_many_together(one)


def step_many_together(
    parts: Sequence[tuple[MetricView, IntArray, FloatArray, FloatArray, IntArray]],
) -> list[Detection]:
    """Several time steps of the shared detector for the series of several views (all sharing it), in one call;
    a detection per part. Each part is ``(view, ids, values, weights, starts)``: time step ``i`` of the part is
    its points ``starts[i]:starts[i + 1]``; every part has the same number of time steps. Within a time step the
    parts' points are stepped in the order of ``parts``."""
    shared = parts[0][0].shared
    steps = parts[0][4].size - 1
    rows = np.concatenate([view.rows(ids) for view, ids, _, _, _ in parts])
    step_of = np.concatenate([np.repeat(np.arange(steps), np.diff(starts)) for *_, starts in parts])
    order = np.argsort(step_of, kind="stable")  # time steps in order, parts in order within each
    counts = np.sum([np.diff(starts) for *_, starts in parts], axis=0)
    det = shared.detector.step_many(
        rows[order],
        np.concatenate([v for _, _, v, _, _ in parts])[order],
        np.concatenate([w for _, _, _, w, _ in parts])[order],
        np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
    )
    back = np.empty_like(order)
    back[order] = np.arange(order.size)  # position of each part's point in the call
    out: list[Detection] = []
    start = 0
    for _, ids, _, _, _ in parts:
        take = back[start : start + ids.size]
        out.append(
            Detection(
                score=det.score[take], expected=det.expected[take], lower=det.lower[take], upper=det.upper[take],
                **{f: _cut(getattr(det, f), take) for f in _OPTIONAL},
            )
        )  # fmt: skip
        start += ids.size
    return out


def _cut(array: np.ndarray | None, part: IntArray) -> np.ndarray | None:
    return None if array is None else array[part]


def share(detectors: dict[str, VectorDetector], make: Callable[[str], VectorDetector]) -> list[list[str]]:
    """Replace the detectors that can share one by views of a shared detector (in place); return the groups of
    metrics to step together, in the order of ``detectors`` (a metric alone is a group of one)."""
    by_key: dict[Hashable, list[str]] = {}
    groups: list[list[str]] = []
    for m, d in detectors.items():
        key = share_key(d)
        if key is None:
            groups.append([m])
        elif key in by_key:
            by_key[key].append(m)
        else:
            by_key[key] = [m]
            groups.append(by_key[key])
    for group in groups:
        if len(group) > 1:
            first = detectors[group[0]]
            assert isinstance(first, RobustLevelDetector)
            shared = SharedDetector(first)
            for m in group:
                detectors[m] = MetricView(shared, functools.partial(make, m))
    return groups
