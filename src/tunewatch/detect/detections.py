"""The detection stage's output: per metric, the columns of its points as arrays, and the series keys apart.

A run of the detection stage scores every point of every watched metric over many windows (at low volume,
millions of points, most of them zeros of silent count series). Gathering the key strings (dimension set and
dimension values) of every point into one frame costs more than scoring them, and the alert engine needs them
only for the few points an alert is about. :class:`Detections` therefore keeps, per metric, the points' window,
series id and key id with the detector's columns, and the distinct keys once (a frame, row = key id):

* :meth:`Detections.rows` gives one metric's points in some dimension sets, in window order, without key strings
  (what a rule's condition and lifecycle read);
* :meth:`Detections.at` gives one metric's points of one window with their keys (what an alert's explanation
  reads), :meth:`Detections.key` the key of one point;
* :meth:`Detections.frame` gives the whole detection frame (``DETECTION_SCHEMA``), made on demand only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import polars as pl

from tunewatch.schema import DIMENSION_FIELDS

SERIES_KEYS: Final = ("dimset", *DIMENSION_FIELDS)
#: the detector's columns of a point, NaN where undefined (warm-up); frames show them as null
FLOAT_COLUMNS: Final = ("value", "weight", "evidence_weight", "evidence_value", "evidence_expected",
                        "evidence_excess", "evidence_points", "expected", "lower", "upper", "score")  # fmt: skip
DETECTION_SCHEMA: Final = pl.Schema(
    [
        ("window_start", pl.Int64),
        ("metric", pl.String),
        ("sid", pl.Int64),
        ("dimset", pl.String),
        *[(f, pl.String) for f in DIMENSION_FIELDS],
        ("value", pl.Float64),
        ("weight", pl.Float64),
        ("evidence_weight", pl.Float64),  # the weight the detector's judgement rests on (pooled points: more)
        ("evidence_value", pl.Float64),  # observed and expected values (per point) of that judgement
        ("evidence_expected", pl.Float64),
        ("evidence_excess", pl.Float64),  # observed minus expected, summed over its points (ratios: in attempts)
        ("evidence_points", pl.Float64),  # the points (minutes) that judgement spans: a rule's `for` counts them
        ("expected", pl.Float64),
        ("lower", pl.Float64),
        ("upper", pl.Float64),
        ("score", pl.Float64),
    ]
)
#: the columns of :meth:`Detections.rows`: a point's window, series and key id, and the detector's columns
ROW_SCHEMA: Final = pl.Schema(
    [("window_start", pl.Int64), ("sid", pl.Int64), ("key_id", pl.Int64), *[(f, pl.Float64) for f in FLOAT_COLUMNS]]
)


@dataclass(slots=True)
class MetricPoints:
    """One metric's points, in window order: window, series id, key id and the detector's columns (NaN where
    undefined), all of one length.

    >>> pts = MetricPoints(np.array([0, 60_000]), np.array([0, 0]), np.array([3, 3]), {"value": np.array([1.0, 2.0])})
    >>> part = pts.take(np.array([1]))
    >>> part.window_start.tolist(), part.floats["value"].tolist()
    ([60000], [2.0])
    """

    window_start: np.ndarray
    sid: np.ndarray
    key_id: np.ndarray
    floats: Mapping[str, np.ndarray]

    def take(self, rows: np.ndarray | slice) -> MetricPoints:
        """The points at ``rows`` (positions or a slice)."""
        return MetricPoints(
            window_start=self.window_start[rows],
            sid=self.sid[rows],
            key_id=self.key_id[rows],
            floats={f: a[rows] for f, a in self.floats.items()},
        )


class Detections:
    """The detections of one run of windows (see the module docstring).

    ``keys`` holds the series keys (``SERIES_KEYS`` columns, as strings; row = key id), ``points`` each metric's
    points and ``metrics`` the order of the metrics in :meth:`frame` (metrics without points are left out).

    >>> keys = pl.DataFrame({"dimset": ["global", "market"], "market": [None, "BR"]}).with_columns(
    ...     pl.lit(None, dtype=pl.String).alias(f) for f in DIMENSION_FIELDS if f != "market")
    >>> nan = np.full(2, np.nan)
    >>> pts = MetricPoints(np.array([0, 0]), np.array([0, 1]), np.array([0, 1]),
    ...                    {f: np.array([5.0, 2.0]) if f == "value" else nan for f in FLOAT_COLUMNS})
    >>> found = Detections(keys, {"plays": pts}, ["plays"])
    >>> found.rows("plays", ["market"]).select("key_id", "value").rows(), found.key(1)["market"]
    ([(1, 2.0)], 'BR')
    >>> found.frame().select("metric", "dimset", "market", "value", "score").rows()
    [('plays', 'global', None, 5.0, None), ('plays', 'market', 'BR', 2.0, None)]
    """

    def __init__(self, keys: pl.DataFrame, points: Mapping[str, MetricPoints], metrics: Sequence[str]) -> None:
        self.keys = keys.select(SERIES_KEYS)
        self.points = {m: points[m] for m in metrics if m in points and points[m].sid.size}
        self._frame: pl.DataFrame | None = None

    @classmethod
    def empty(cls) -> Detections:
        """No points."""
        return cls(pl.DataFrame(schema=dict.fromkeys(SERIES_KEYS, pl.String)), {}, [])

    @classmethod
    def of_frame(cls, frame: pl.DataFrame) -> Detections:
        """The detections of a detection frame (``DETECTION_SCHEMA``; missing columns read as null), each metric's
        points in window order (stable)."""
        missing = [pl.lit(None, dtype=t).alias(c) for c, t in DETECTION_SCHEMA.items() if c not in frame.columns]
        full = frame.with_columns(missing).select(pl.col(c).cast(t) for c, t in DETECTION_SCHEMA.items())
        keys = full.select(SERIES_KEYS)
        distinct = keys.unique(maintain_order=True)
        key_ids = (
            keys.join(distinct.with_row_index("key_id"), on=list(SERIES_KEYS), how="left", nulls_equal=True,
                      maintain_order="left")
            .get_column("key_id").cast(pl.Int64).to_numpy()
        )  # fmt: skip
        metric = full.get_column("metric")
        names = metric.unique(maintain_order=True).drop_nulls().to_list()
        points: dict[str, MetricPoints] = {}
        for name in names:
            rows = np.flatnonzero((metric == name).to_numpy())
            rows = rows[np.argsort(full.get_column("window_start").to_numpy()[rows], kind="stable")]
            part = full[rows]
            points[name] = MetricPoints(
                window_start=part.get_column("window_start").to_numpy(),
                sid=part.get_column("sid").fill_null(-1).to_numpy(),
                key_id=key_ids[rows],
                floats={f: part.get_column(f).fill_null(np.nan).to_numpy() for f in FLOAT_COLUMNS},
            )
        found = cls(distinct, points, names)
        found._frame = frame
        return found

    def is_empty(self) -> bool:
        """True when there are no points."""
        return not self.points

    def windows(self) -> np.ndarray:
        """The distinct windows of the points, ascending."""
        if not self.points:
            return np.zeros(0, dtype=np.int64)
        parts = []
        for p in self.points.values():
            w = p.window_start
            parts.append(w[np.concatenate([[True], w[1:] != w[:-1]])] if w.size else w)
        return np.unique(np.concatenate(parts))

    def rows(self, metric: str, dimsets: Sequence[str]) -> pl.DataFrame:
        """The points of ``metric`` in ``dimsets``, in window order (``ROW_SCHEMA``: no key strings; NaN as null)."""
        p = self.points.get(metric)
        if p is None:
            return pl.DataFrame(schema=ROW_SCHEMA)
        wanted = self.keys.get_column("dimset").is_in(list(dimsets)).fill_null(False).to_numpy()
        take = wanted[p.key_id]
        return _frame_of(p if take.all() else p.take(np.flatnonzero(take)))

    def at(self, metric: str, window: int) -> pl.DataFrame:
        """The points of ``metric`` in ``window`` with their keys (``DETECTION_SCHEMA``), in frame order."""
        p = self.points.get(metric)
        if p is None:
            return pl.DataFrame(schema=DETECTION_SCHEMA)
        a, b = np.searchsorted(p.window_start, [window, window + 1])
        return self._full([(metric, p.take(slice(int(a), int(b))))])

    def key(self, key_id: int) -> dict[str, str | None]:
        """The key (dimension set and dimension values) of a point's key id."""
        return self.keys.row(key_id, named=True)

    def frame(self) -> pl.DataFrame:
        """Every point as one detection frame (``DETECTION_SCHEMA``), metric after metric; made once, on demand."""
        if self._frame is None:
            self._frame = self._full(list(self.points.items()))
        return self._frame

    def _full(self, parts: list[tuple[str, MetricPoints]]) -> pl.DataFrame:
        parts = [(m, p) for m, p in parts if p.sid.size]
        if not parts:
            return pl.DataFrame(schema=DETECTION_SCHEMA)
        names = pl.Series("metric", [m for m, _ in parts], dtype=pl.String)
        codes = np.concatenate([np.full(p.sid.size, i, dtype=np.int64) for i, (_, p) in enumerate(parts)])
        keys = self.keys[np.concatenate([p.key_id for _, p in parts])]
        columns = [
            pl.Series("window_start", np.concatenate([p.window_start for _, p in parts]), dtype=pl.Int64),
            names.gather(codes),
            pl.Series("sid", np.concatenate([p.sid for _, p in parts]), dtype=pl.Int64),
            *keys.iter_columns(),
            # NaN (warm-up, undefined) becomes null: Polars orders NaN above every number in comparisons
            *(
                pl.Series(f, np.concatenate([p.floats[f] for _, p in parts]), dtype=pl.Float64, nan_to_null=True)
                for f in FLOAT_COLUMNS
            ),
        ]
        return pl.DataFrame(columns).select(DETECTION_SCHEMA.names())


def _frame_of(p: MetricPoints) -> pl.DataFrame:
    """``ROW_SCHEMA`` frame of some points (NaN as null)."""
    return pl.DataFrame(
        [
            pl.Series("window_start", p.window_start, dtype=pl.Int64),
            pl.Series("sid", p.sid, dtype=pl.Int64),
            pl.Series("key_id", p.key_id, dtype=pl.Int64),
            *(pl.Series(f, p.floats[f], dtype=pl.Float64, nan_to_null=True) for f in FLOAT_COLUMNS),
        ]
    )
