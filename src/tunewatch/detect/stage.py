"""The detection stage: metric frames in, per-point detections (expected value, band, score) out.

Each watched metric has one vectorised detector whose state is indexed by series id; a series is one
(dimension set, dimension values) pair, registered the first time it appears. Windows are stepped in time
order; a detector that can step many windows at once (the robust detector) gets every window of a batch in one
call, other detectors one call per window with every series of the window. Count-like series that go silent
get explicit zeros (for ``zero_fill_ms`` after they were last seen), so that an outage or missing data is seen
as a drop, not a gap.

Series keys are looked up once per frame for every metric: a shared :class:`_KeyRegistry` gives each distinct
key row a key id (by a row hash, confirmed on the values), and each metric maps key ids to its own dense series
ids with one array lookup (:class:`_MetricSeries`), numbered in order of first appearance in the metric's rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import polars as pl

from tunewatch.detect.base import Detection, VectorDetector
from tunewatch.detect.detections import DETECTION_SCHEMA, FLOAT_COLUMNS, SERIES_KEYS, Detections, MetricPoints
from tunewatch.detect.robust import RobustLevelDetector
from tunewatch.detect.shared import MetricView, share, step_many_together
from tunewatch.detect.window_points import window_points
from tunewatch.process.catalogue import METRICS, MetricSpec
from tunewatch.process.dimensions import TOP_K_FIELDS

WINDOW_MS: Final = 60_000
__all__ = ["DETECTION_SCHEMA", "SERIES_KEYS", "DetectionStage", "Detections"]

DetectorFactory = Callable[[MetricSpec], VectorDetector]
#: Rates per minute that entities (values of a top-K field) had before they were watched; NaN where unknown.
EntityPrior = Callable[[str, Sequence[str]], np.ndarray]
#: Count metrics whose new entity series start from the entity's prior rate (plays per minute; for streams an
#: upper bound, so a cautious start).
ENTITY_PRIOR_METRICS: Final = ("plays", "streams")


#: Ratios that are not shares of events (milliseconds over milliseconds, streams per listener): binomial noise
#: on their weight would be a wrong model (its floor hid rebuffering rising from 0.02 % to 0.5 % of listening
#: time), so their noise is learnt, as for sums.
NOT_SHARES: Final = frozenset({"rebuffer_ratio", "streams_per_listener"})


def _noise(spec: MetricSpec) -> str:
    if spec.name in NOT_SHARES:
        return "relative"
    return {"ratio": "binomial", "count": "poisson"}.get(spec.kind, "relative")


def robust_detector(spec: MetricSpec) -> VectorDetector:
    """The robust Holt detector (exact binomial/Poisson tails) for a metric, with the noise model its kind implies."""
    return RobustLevelDetector(noise=_noise(spec))  # type: ignore[arg-type]


def ensemble_detector(spec: MetricSpec) -> VectorDetector:
    """The level + seasonal + change-point ensemble for a metric (settings: :mod:`tunewatch.detect.defaults`)."""
    from tunewatch.detect.defaults import PIPELINE_ENSEMBLE
    from tunewatch.detect.detectors import EnsembleDetector  # compiled kernel: loaded only when used

    return EnsembleDetector(noise=_noise(spec), **PIPELINE_ENSEMBLE)


#: Detectors the pipeline can run, by name (``--detector`` on replay, backtest, serve and run).
PIPELINE_DETECTORS: Final[dict[str, DetectorFactory]] = {"robust": robust_detector, "ensemble": ensemble_detector}

#: The pipeline's default: the robust detector. On six simulated days (seeds 3, 5, 7, 11, 21, 42) it detects
#: 42 of 42 incidents with 0 false alert groups; the ensemble detects 41 (it misses seed 42's small CDN outage:
#: its small-count correction is more cautious) with 0 false groups, so it stays a choice, not the default.
default_detector: DetectorFactory = robust_detector


#: Row hashes live in memory only (recomputed from the keys on load), so any fixed seed will do.
_HASH_SEED: Final = 0x74756E65
_UNKNOWN: Final = -1  # key id of a row whose key is not registered
_AMBIGUOUS: Final = -2  # hash-table entry shared by several registered keys (a 64-bit collision)


class _KeyRegistry:
    """Dense integer key ids, in order of first appearance, for (dimset, dimension values) rows; shared by every
    metric of a stage, so that a frame's keys are looked up once whatever the number of metrics.

    Rows are found by a 64-bit row hash in a sorted table, and every match is confirmed on the key values
    themselves (nulls equal to nulls), so a hash collision cannot merge two keys: it sends the frame through
    the exact (join) path instead, and the colliding hash is marked so that later frames take that path too.
    """

    def __init__(self) -> None:
        self.frame = pl.DataFrame(schema=dict.fromkeys(SERIES_KEYS, pl.String))
        self._table = np.zeros(0, dtype=np.uint64)  # sorted distinct hashes
        self._table_ids = np.zeros(0, dtype=np.int64)  # key id of each, or _AMBIGUOUS

    def __len__(self) -> int:
        return self.frame.height

    def ids(self, keys: pl.DataFrame) -> np.ndarray:
        """Key id of every row of ``keys`` (the ``SERIES_KEYS`` columns, as strings); new keys are registered."""
        if keys.height == 0:
            return np.zeros(0, dtype=np.int64)
        hashes = self._hash(keys)
        ids = self._probe(hashes)
        new = np.flatnonzero(ids == _UNKNOWN)
        if new.size:  # register one key per new hash, in order of first appearance
            _, first = np.unique(hashes[new], return_index=True)
            rows = new[np.sort(first)]
            self._append(keys[rows], hashes[rows])
            ids[new] = self._probe(hashes[new])
        # every row must hold exactly its id's key: a hash shared by two keys sends the frame to the join
        if (ids < 0).any() or not keys.equals(self.frame[ids], null_equal=True):
            return self._exact(keys)
        return ids

    @staticmethod
    def _hash(keys: pl.DataFrame) -> np.ndarray:
        """64-bit hash of every key row (any function of the values will do: matches are confirmed)."""
        return keys.hash_rows(seed=_HASH_SEED).to_numpy()

    def _probe(self, hashes: np.ndarray) -> np.ndarray:
        if self._table.size == 0:
            return np.full(hashes.size, _UNKNOWN, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self._table, hashes), self._table.size - 1)
        return np.where(self._table[pos] == hashes, self._table_ids[pos], _UNKNOWN)

    def _exact(self, keys: pl.DataFrame) -> np.ndarray:
        """Key ids by a join on the key values (nulls equal): the path taken when hashes collide."""
        on = list(SERIES_KEYS)
        registered = self.frame.with_row_index("_id")
        joined = keys.join(registered, on=on, how="left", nulls_equal=True, maintain_order="left")
        missing = joined.filter(pl.col("_id").is_null()).select(on).unique(maintain_order=True)
        if missing.height:
            self._append(missing, self._hash(missing))
            joined = keys.join(self.frame.with_row_index("_id"), on=on, how="left", nulls_equal=True,
                               maintain_order="left")  # fmt: skip
        return joined.get_column("_id").to_numpy().astype(np.int64)

    def _append(self, new_keys: pl.DataFrame, hashes: np.ndarray) -> None:
        """Register ``new_keys`` (distinct, not registered yet) with their row hashes."""
        start = self.frame.height
        self.frame = pl.concat([self.frame, new_keys.select(SERIES_KEYS)])
        if self.frame.n_chunks() > 16:
            self.frame = self.frame.rechunk()
        distinct, first, counts = np.unique(hashes.astype(np.uint64), return_index=True, return_counts=True)
        new_ids = np.where(counts == 1, start + first, _AMBIGUOUS).astype(np.int64)
        pos = np.searchsorted(self._table, distinct)
        taken = np.zeros(distinct.size, dtype=bool)
        inside = pos < self._table.size
        taken[inside] = self._table[pos[inside]] == distinct[inside]
        self._table_ids[pos[taken]] = _AMBIGUOUS  # an old key's hash: neither can be found by hash alone
        self._table = np.insert(self._table, pos[~taken], distinct[~taken])
        self._table_ids = np.insert(self._table_ids, pos[~taken], new_ids[~taken])


class _MetricSeries:
    """One metric's series ids over the shared key ids: dense, numbered in order of first appearance in the
    metric's rows (window order, then frame order), so they do not depend on the other metrics."""

    def __init__(self) -> None:
        self.keys = np.zeros(0, dtype=np.int64)  # series id → key id
        self._sid = np.zeros(0, dtype=np.int64)  # key id → series id, or -1

    def __len__(self) -> int:
        return self.keys.size

    def ids(self, key_ids: np.ndarray, n_keys: int) -> np.ndarray:
        """Series id of every key id (all below ``n_keys``); keys new to the metric get the next ids."""
        if self._sid.size < n_keys:
            self._sid = np.concatenate([self._sid, np.full(n_keys - self._sid.size, -1, dtype=np.int64)])
        sids = self._sid[key_ids]
        fresh = key_ids[sids < 0]
        if fresh.size:
            _, first = np.unique(fresh, return_index=True)
            added = fresh[np.sort(first)]
            self._sid[added] = np.arange(self.keys.size, self.keys.size + added.size, dtype=np.int64)
            self.keys = np.concatenate([self.keys, added])
            sids = self._sid[key_ids]
        return sids

    def restore(self, key_ids: np.ndarray, n_keys: int) -> None:
        """Replace the mapping: series ``i`` is key ``key_ids[i]``."""
        self.keys = key_ids.astype(np.int64)
        self._sid = np.full(n_keys, -1, dtype=np.int64)
        self._sid[self.keys] = np.arange(self.keys.size, dtype=np.int64)


@dataclass(slots=True)
class _Frame:
    """One metric frame prepared once for every metric: rows in window order and their key ids."""

    order: np.ndarray  # row positions in window order (stable)
    windows: np.ndarray  # window_start, in window order
    key_ids: np.ndarray  # key id of every row of a watched dimension set (others: -1), in frame order
    columns: dict[str, np.ndarray]  # masks, values and weights, in frame order


@dataclass(slots=True)
class _MetricInput:
    """One metric's points over the windows of a run, in window order (see :func:`window_points`)."""

    t: np.ndarray
    sids: np.ndarray
    values: np.ndarray
    weights: np.ndarray
    starts: np.ndarray  # window i: points starts[i]:starts[i + 1]


class DetectionStage:
    """Runs one detector per watched metric over the dimension sets the rules ask for (metrics whose detectors
    have the same configuration step together, see :mod:`tunewatch.detect.shared`).

    >>> from tunewatch.process import MusicDataProcessor
    >>> from tunewatch.validate import EnterpriseDataValidator
    >>> ads = [{"event_id": f"e{i}", "ts": 1_699_999_980_000 + i, "event_type": "ad", "user_id": "u1",
    ...         "market": "SE" if i % 2 else "BR", "platform": "web", "tier": "free", "ad_revenue_micros": 1200}
    ...        for i in range(5)]
    >>> metrics = MusicDataProcessor().process(EnterpriseDataValidator().validate(ads)).metrics
    >>> stage = DetectionStage({"ad_revenue_micros": ["global", "market"]})
    >>> out = stage.run(metrics)
    >>> stage.series_count, out.select("dimset", "market", "value").sort("value").rows()
    (3, [('market', 'SE', 2400.0), ('market', 'BR', 3600.0), ('global', None, 6000.0)])
    """

    def __init__(
        self,
        targets: Mapping[str, Sequence[str]],
        detector_factory: DetectorFactory = default_detector,
        zero_fill_ms: int = 60 * 60_000,
        entity_prior: EntityPrior | None = None,
    ) -> None:
        unknown = [m for m in targets if m not in METRICS]
        if unknown:
            raise KeyError(f"unknown metric(s): {', '.join(unknown)}")
        self.targets = {m: tuple(d) for m, d in targets.items()}
        self.zero_fill_ms = zero_fill_ms
        #: where a new track's or artist's series starts from (see :meth:`_seed_entities`); None: a warm-up
        self.entity_prior = entity_prior
        self.detectors = {m: detector_factory(METRICS[m]) for m in self.targets}
        #: metrics stepped together, one detector call per window for each group (see :mod:`.shared`)
        self._groups = share(self.detectors, lambda m: detector_factory(METRICS[m]))
        self._keys = _KeyRegistry()
        self._series = {m: _MetricSeries() for m in self.targets}
        self._last_seen = {m: np.zeros(0, dtype=np.int64) for m in self.targets}
        self._dimsets = sorted(set(self.targets.values()))  # distinct dimension-set lists, one mask each
        self.next_window: int | None = None

    @property
    def series_count(self) -> int:
        """Number of series under watch."""
        return sum(len(s) for s in self._series.values())

    #: version of :meth:`state_dict`'s layout (the detectors version their own arrays)
    STATE_VERSION: Final = 1

    def _series_frame(self, metric: str) -> pl.DataFrame:
        keys = self._series[metric].keys
        return self._keys.frame[keys].insert_column(0, pl.Series("sid", np.arange(keys.size, dtype=np.int64)))

    def state_dict(self) -> dict[str, Any]:
        """Everything the stage has learnt, as plain values and arrays (msgpack-able, for checkpoints):
        per metric its series ids, the detector's state and when each series was last seen."""
        return {
            "version": self.STATE_VERSION,
            "next_window": self.next_window,
            "metrics": {
                m: {
                    "series": self._series_frame(m).to_dict(as_series=False),
                    "detector": self.detectors[m].state_dict(),
                    "last_seen": self._last_seen[m],
                }
                for m in self.targets
            },
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> int:
        """Restore :meth:`state_dict` output for the metrics both have (rules may have changed since);
        return how many metrics were restored. A state of another layout version is refused."""
        if state.get("version") != self.STATE_VERSION:
            raise ValueError(f"detection state version {state.get('version')} != {self.STATE_VERSION}")
        schema = {"sid": pl.Int64, **dict.fromkeys(SERIES_KEYS, pl.String)}
        restored = 0
        for m, saved in state["metrics"].items():
            if m not in self.targets:
                continue
            series = pl.DataFrame(saved["series"], schema=schema).sort("sid")
            if not np.array_equal(series.get_column("sid").to_numpy(), np.arange(series.height)):
                raise ValueError(f"detection state of metric {m!r}: series ids are not 0..{series.height - 1}")
            key_ids = self._keys.ids(series.select(SERIES_KEYS))
            if np.unique(key_ids).size != key_ids.size:
                raise ValueError(f"detection state of metric {m!r}: a series key is listed twice")
            self._series[m].restore(key_ids, len(self._keys))
            self.detectors[m].load_state_dict(dict(saved["detector"]))
            self._last_seen[m] = np.asarray(saved["last_seen"], dtype=np.int64)
            restored += 1
        self.next_window = state.get("next_window")
        return restored

    def run(self, metrics: pl.DataFrame, until: int | None = None) -> pl.DataFrame:
        """Detect over every window from the last one seen up to ``until`` (default: the newest in ``metrics``);
        the detection frame (``DETECTION_SCHEMA``) of :meth:`detect`."""
        return self.detect(metrics, until).frame()

    def detect(self, metrics: pl.DataFrame, until: int | None = None) -> Detections:
        """Detect over every window from the last one seen up to ``until`` (default: the newest in ``metrics``).

        Windows with no rows at all are stepped too (count series then read as zero).
        """
        if metrics.is_empty() and until is None:
            return Detections.empty()
        newest = int(metrics.get_column("window_start").max()) if metrics.height else until  # type: ignore[arg-type]
        last = max(newest, until) if until is not None and newest is not None else newest
        assert last is not None
        first = self.next_window
        if first is None:
            first = int(metrics.get_column("window_start").min())  # type: ignore[arg-type]
        windows = np.arange(first, last + WINDOW_MS, WINDOW_MS, dtype=np.int64)
        self.next_window = int(last) + WINDOW_MS
        frame = self._prepare(metrics)
        inputs = {m: self._metric_input(m, d, frame, windows) for m, d in self.targets.items()}
        detections: dict[str, Detection] = {}
        for group in self._groups:
            detections.update(self._detect_group(group, inputs, windows))
        points = {m: self._points(m, inputs[m], detections[m]) for m in self.targets if m in detections}
        return Detections(self._keys.frame, points, list(self.targets))

    def _detect_group(
        self, group: list[str], inputs: Mapping[str, _MetricInput], windows: np.ndarray
    ) -> dict[str, Detection]:
        """Detections of a group of metrics over every window: one detector call for the group when its detector
        can step many windows at once (the robust detector, shared or not), else one call per window."""
        asks = [m for m in group if inputs[m].sids.size]
        if not asks:
            return {}
        if len(group) > 1:  # views of one shared detector
            views = [self.detectors[m] for m in asks]
            assert all(isinstance(v, MetricView) for v in views)
            parts = [(v, inputs[m].sids, inputs[m].values, inputs[m].weights, inputs[m].starts)
                     for v, m in zip(views, asks, strict=True)]  # fmt: skip
            return dict(zip(asks, step_many_together(parts), strict=True))  # type: ignore[arg-type]
        (m,) = asks
        d, p = self.detectors[m], inputs[m]
        step_many = getattr(d, "step_many", None)
        if step_many is not None:
            return {m: step_many(p.sids, p.values, p.weights, p.starts)}
        per_window = [
            _complete(d.step(int(windows[i]), *(c[a:b] for c in (p.sids, p.values, p.weights))), p.values[a:b],
                      p.weights[a:b])
            for i, (a, b) in enumerate(zip(p.starts[:-1], p.starts[1:], strict=True)) if b > a
        ]  # fmt: skip
        return {m: Detection(**{f: np.concatenate([getattr(x, f) for x in per_window]) for f in _FIELDS})}

    def _prepare(self, metrics: pl.DataFrame) -> _Frame:
        """Look the frame's keys up once, and take out every column the metrics need in one select."""
        if metrics.height == 0:
            empty = np.zeros(0, dtype=np.int64)
            return _Frame(order=empty, windows=empty, key_ids=empty, columns={})
        exprs: list[pl.Expr] = [pl.col("window_start").cast(pl.Int64)]
        exprs += [pl.col("dimset").is_in(d).fill_null(False).alias(f"d:{i}") for i, d in enumerate(self._dimsets)]
        for m in self.targets:
            spec = METRICS[m]
            weight = pl.col(spec.weight) if spec.weight else pl.lit(1.0)
            exprs += [
                pl.col(m).is_not_null().alias(f"n:{m}"),
                pl.col(m).cast(pl.Float64).alias(f"v:{m}"),
                weight.cast(pl.Float64).alias(f"w:{m}"),
            ]
        columns = {s.name: s.to_numpy() for s in metrics.select(exprs).iter_columns()}
        wins = columns.pop("window_start")
        order = np.argsort(wins, kind="stable")
        watched = np.logical_or.reduce([columns[f"d:{i}"] for i in range(len(self._dimsets))])
        rows = np.flatnonzero(watched)  # rows of dimension sets no metric watches get no key id
        keys = metrics.select(pl.col(SERIES_KEYS).cast(pl.String))
        key_ids = np.full(metrics.height, _UNKNOWN, dtype=np.int64)
        key_ids[rows] = self._keys.ids(keys if rows.size == keys.height else keys[rows])
        return _Frame(order=order, windows=wins[order], key_ids=key_ids, columns=columns)

    def _metric_input(self, metric: str, dimsets: tuple[str, ...], frame: _Frame, windows: np.ndarray) -> _MetricInput:
        """One metric's points over ``windows`` (new series registered, and seeded where an entity prior is known;
        silent count series get zeros); updates when each series was last seen."""
        spec = METRICS[metric]
        if frame.order.size:
            cols = frame.columns
            wanted = (cols[f"d:{self._dimsets.index(dimsets)}"] & cols[f"n:{metric}"])[frame.order]
            rows = frame.order[wanted]
            wins = frame.windows[wanted]
            vals, wts = cols[f"v:{metric}"][rows], cols[f"w:{metric}"][rows]
            key_ids = frame.key_ids[rows]
        else:
            wins = key_ids = np.zeros(0, dtype=np.int64)
            vals = wts = np.zeros(0, dtype=np.float64)
        series = self._series[metric]
        known = len(series)
        sids = series.ids(key_ids, len(self._keys))
        n_series = len(series)
        if n_series > known and metric in ENTITY_PRIOR_METRICS and self.entity_prior is not None:
            self._seed_entities(metric, series.keys[known:], np.arange(known, n_series, dtype=np.int64))
        last_seen = self._last_seen[metric]
        if last_seen.size < n_series:
            last_seen = np.concatenate([last_seen, np.full(n_series - last_seen.size, -(2**62), dtype=np.int64)])
        bounds = np.searchsorted(wins, np.concatenate([windows, [windows[-1] + WINDOW_MS]]) if windows.size else [])
        t, ids, v, wt, starts = window_points(
            windows, bounds.astype(np.int64), sids, vals.astype(np.float64), wts.astype(np.float64), last_seen,
            self.zero_fill_ms, spec.kind in ("count", "sum"),
        )  # fmt: skip
        self._last_seen[metric] = last_seen
        return _MetricInput(t=t, sids=ids, values=v, weights=wt, starts=starts)

    def _points(self, metric: str, p: _MetricInput, det: Detection) -> MetricPoints:
        det = _complete(det, p.values, p.weights)
        own = {"value": p.values, "weight": p.weights}
        return MetricPoints(
            window_start=p.t,
            sid=p.sids,
            key_id=self._series[metric].keys[p.sids],
            floats={f: own[f] if f in own else getattr(det, f) for f in FLOAT_COLUMNS},
        )

    def _seed_entities(self, metric: str, key_ids: np.ndarray, sids: np.ndarray) -> None:
        """Start the new series of single-entity dimension sets (one track, one artist) from the entity's rate
        before it entered the heavy hitters, warm: judged against its own past (its share of the "other"
        aggregate it came from), a bot farm on an obscure track is a surge from its first watched minute, and
        its first minutes are not learnt as its normal."""
        seed = getattr(self.detectors[metric], "seed", None)
        if seed is None or self.entity_prior is None:
            return
        keys = self._keys.frame[key_ids]
        dimsets = keys.get_column("dimset").to_numpy()
        for f in TOP_K_FIELDS:
            take = np.flatnonzero(dimsets == f)
            if take.size:
                prior = self.entity_prior(f, keys.get_column(f).gather(take).to_list())
                ok = np.isfinite(prior)
                if ok.any():
                    seed(sids[take[ok]], prior[ok])


_FIELDS: Final = ("score", "expected", "lower", "upper", "evidence_weight", "evidence_value", "evidence_expected",
                  "evidence_excess", "evidence_points")  # fmt: skip


def _complete(det: Detection, values: np.ndarray, weights: np.ndarray) -> Detection:
    """``det`` with every evidence field given (a detector that does not pool: the point's own)."""
    return Detection(
        score=det.score, expected=det.expected, lower=det.lower, upper=det.upper,
        evidence_weight=weights if det.evidence_weight is None else det.evidence_weight,
        evidence_value=values if det.evidence_value is None else det.evidence_value,
        evidence_expected=det.expected if det.evidence_expected is None else det.evidence_expected,
        evidence_excess=values - det.expected if det.evidence_excess is None else det.evidence_excess,
        evidence_points=np.ones(values.size) if det.evidence_points is None else det.evidence_points,
    )  # fmt: skip
