"""The detection stage's series registry: dense, stable ids, exactly those of the former per-metric join
registry (re-implemented here as the oracle), null dimension values as keys, hash collisions, checkpoints, and
identical detections over a whole simulated run."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from tests.conftest import BASE_MS
from tunewatch.alert.rules import load_rules
from tunewatch.detect.base import Detection, FloatArray, IntArray, VectorDetector
from tunewatch.detect.stage import (
    DETECTION_SCHEMA,
    SERIES_KEYS,
    WINDOW_MS,
    DetectionStage,
    DetectorFactory,
    _KeyRegistry,
    default_detector,
)
from tunewatch.ingest.batch import RawBatch, conform
from tunewatch.process.catalogue import METRICS
from tunewatch.process.processor import MusicDataProcessor
from tunewatch.simulate import SimulationConfig, Simulator
from tunewatch.validate.validator import EnterpriseDataValidator

KEY_SCHEMA = {k: pl.String for k in SERIES_KEYS}
TARGETS = {"plays": ["global", "market", "platform"], "skip_rate": ["global", "market", "cdn"], "errors": ["cdn"]}


# ------------------------------------------------------------------------------ oracle: the former algorithm


class _OracleRegistry:
    """The former registry: one per metric, a left join on the key columns (nulls equal), twice when new
    series appear; new series numbered in order of first appearance."""

    def __init__(self) -> None:
        self.frame = pl.DataFrame(schema={"sid": pl.Int64, **KEY_SCHEMA})

    def ids(self, keys: pl.DataFrame) -> pl.Series:
        on = list(SERIES_KEYS)
        joined = keys.join(self.frame, on=on, how="left", nulls_equal=True, maintain_order="left")
        missing = joined.filter(pl.col("sid").is_null()).select(SERIES_KEYS).unique(maintain_order=True)
        if missing.height:
            start = self.frame.height
            new = missing.with_columns(pl.int_range(start, start + missing.height, dtype=pl.Int64).alias("sid"))
            self.frame = pl.concat([self.frame, new.select(self.frame.columns)])
            joined = keys.join(self.frame, on=on, how="left", nulls_equal=True, maintain_order="left")
        return joined.get_column("sid")


class _OracleStage:
    """The former ``DetectionStage.run``: per metric a filter, a sort, a registry join, the window loop and a
    join back to the key columns."""

    def __init__(
        self,
        targets: Mapping[str, Sequence[str]],
        detector_factory: DetectorFactory = default_detector,
        zero_fill_ms: int = 60 * 60_000,
    ) -> None:
        self.targets = {m: tuple(d) for m, d in targets.items()}
        self.zero_fill_ms = zero_fill_ms
        self.detectors = {m: detector_factory(METRICS[m]) for m in self.targets}
        self.registries = {m: _OracleRegistry() for m in self.targets}
        self.last_seen = {m: np.zeros(0, dtype=np.int64) for m in self.targets}
        self.next_window: int | None = None

    def state_dict(self) -> dict[str, Any]:
        metrics = {
            m: {
                "series": self.registries[m].frame.to_dict(as_series=False),
                "detector": self.detectors[m].state_dict(),
                "last_seen": self.last_seen[m],
            }
            for m in self.targets
        }
        return {"version": 1, "next_window": self.next_window, "metrics": metrics}

    def run(self, metrics: pl.DataFrame, until: int | None = None) -> pl.DataFrame:
        newest = int(metrics.get_column("window_start").max()) if metrics.height else until  # type: ignore[arg-type]
        last = max(newest, until) if until is not None and newest is not None else newest
        assert last is not None
        first = self.next_window if self.next_window is not None else int(metrics["window_start"].min())  # type: ignore[arg-type]
        windows = np.arange(first, last + WINDOW_MS, WINDOW_MS, dtype=np.int64)
        self.next_window = int(last) + WINDOW_MS
        parts = [p for m, d in self.targets.items() if (p := self._run_metric(m, d, metrics, windows)).height]
        if not parts:
            return pl.DataFrame(schema=DETECTION_SCHEMA)
        floats = ("value", "weight", "evidence_weight", "evidence_value", "evidence_expected", "evidence_excess",
                  "evidence_points", "expected", "lower", "upper", "score")  # fmt: skip
        return pl.concat(parts).select(DETECTION_SCHEMA.names()).with_columns(pl.col(floats).fill_nan(None))

    def _run_metric(
        self, metric: str, dimsets: tuple[str, ...], frame: pl.DataFrame, windows: np.ndarray
    ) -> pl.DataFrame:
        spec = METRICS[metric]
        weight = pl.col(spec.weight) if spec.weight else pl.lit(1.0)
        sub = (
            frame.filter(pl.col("dimset").is_in(dimsets) & pl.col(metric).is_not_null())
            .select(
                "window_start", *SERIES_KEYS, pl.col(metric).alias("value"), weight.cast(pl.Float64).alias("weight")
            )
            .sort("window_start", maintain_order=True)
        )
        registry = self.registries[metric]
        sids = registry.ids(sub.select(SERIES_KEYS)).to_numpy().astype(np.int64)
        last_seen = self.last_seen[metric]
        if last_seen.size < registry.frame.height:
            extra = np.full(registry.frame.height - last_seen.size, -(2**62), dtype=np.int64)
            last_seen = np.concatenate([last_seen, extra])
        wins = sub.get_column("window_start").to_numpy()
        vals = sub.get_column("value").to_numpy().astype(np.float64)
        wts = sub.get_column("weight").to_numpy().astype(np.float64)
        bounds = np.searchsorted(wins, np.concatenate([windows, [windows[-1] + WINDOW_MS]]) if windows.size else [])
        rows: list[pl.DataFrame] = []
        for i, t in enumerate(windows):
            a, b = bounds[i], bounds[i + 1]
            ids, v, wt = sids[a:b], vals[a:b], wts[a:b]
            if spec.kind in ("count", "sum"):
                absent = np.setdiff1d(np.flatnonzero(last_seen >= t - self.zero_fill_ms), ids)
                ids = np.concatenate([ids, absent])
                v, wt = np.concatenate([v, np.zeros(absent.size)]), np.concatenate([wt, np.ones(absent.size)])
            if ids.size == 0:
                continue
            last_seen[sids[a:b]] = t
            det = self.detectors[metric].step(int(t), ids, v, wt)
            ew = wt if det.evidence_weight is None else det.evidence_weight  # what the judgement rests on
            ev_v = v if det.evidence_value is None else det.evidence_value
            ev_e = det.expected if det.evidence_expected is None else det.evidence_expected
            ev_x = v - det.expected if det.evidence_excess is None else det.evidence_excess
            ev_p = np.ones(ids.size) if det.evidence_points is None else det.evidence_points
            cols = {"window_start": np.full(ids.size, t, dtype=np.int64), "sid": ids, "value": v, "weight": wt,
                    "evidence_weight": ew, "evidence_value": ev_v, "evidence_expected": ev_e,
                    "evidence_excess": ev_x, "evidence_points": ev_p}  # fmt: skip
            cols |= {"expected": det.expected, "lower": det.lower, "upper": det.upper, "score": det.score}
            rows.append(pl.DataFrame(cols))
        self.last_seen[metric] = last_seen
        if not rows:
            return pl.DataFrame(schema=DETECTION_SCHEMA)
        out = pl.concat(rows).join(registry.frame, on="sid", how="left", maintain_order="left")
        return out.with_columns(pl.lit(metric).alias("metric"))


class _EwmaDetector(VectorDetector):
    """A small detector whose checkpoint holds all its state, so that the checkpoint tests check the stage's
    part of it (series ids, last seen, next window) whatever a production detector's checkpoint covers."""

    def __init__(self) -> None:
        self.level, self.n = np.zeros(0), np.zeros(0, dtype=np.int64)

    def step(self, t: int, ids: IntArray, values: FloatArray, weights: FloatArray) -> Detection:
        if ids.size and ids.max() >= self.level.size:
            extra = int(ids.max()) + 1 - self.level.size
            self.level, self.n = (
                np.concatenate([self.level, np.zeros(extra)]),
                np.concatenate([self.n, np.zeros(extra, np.int64)]),
            )
        expected = np.where(self.n[ids] > 0, self.level[ids], np.nan)
        dev = np.abs(values - expected)
        out = Detection(score=dev / (1 + dev), expected=expected, lower=expected - 1, upper=expected + 1)
        ok = np.isfinite(values)
        seen = self.n[ids[ok]] > 0
        self.level[ids[ok]] = np.where(seen, 0.7 * self.level[ids[ok]] + 0.3 * values[ok], values[ok])
        self.n[ids[ok]] += 1
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"version": self.version, "level": self.level.copy(), "n": self.n.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.level, self.n = np.asarray(state["level"], np.float64), np.asarray(state["n"], np.int64)


def _ewma(_spec: Any) -> VectorDetector:
    return _EwmaDetector()


# -------------------------------------------------------------------------------------------- helpers

_DIMSETS = ["global", "market", "platform", "cdn", None]
_VALUES = {"market": ["BR", "DE", "", None], "platform": ["ios", "web", None], "cdn": ["edge-1", "edge-2", None]}


def _frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """A metric frame with the processor's key columns and the metrics of ``TARGETS`` (and their weights)."""
    schema = {
        "window_start": pl.Int64,
        **KEY_SCHEMA,
        "plays": pl.Float64,
        "skip_rate": pl.Float64,
        "errors": pl.Float64,
    }
    return pl.DataFrame(rows, schema=schema)


def _row(
    window: int, key: tuple[str | None, ...], plays: float | None = 10.0, skip: float | None = 0.2
) -> dict[str, Any]:
    return {"window_start": BASE_MS + window * WINDOW_MS, **dict(zip(SERIES_KEYS, key, strict=False)),
            "plays": plays, "skip_rate": skip, "errors": plays}  # fmt: skip


def _series(stage: DetectionStage | _OracleStage) -> dict[str, Any]:
    return {m: s["series"] for m, s in stage.state_dict()["metrics"].items()}


_keys = st.tuples(st.sampled_from(_DIMSETS), *(st.sampled_from(_VALUES[k]) for k in ("market", "platform", "cdn")))
_windows = st.lists(
    st.lists(st.tuples(_keys, st.sampled_from([None, 3.0, 12.0]), st.sampled_from([None, 0.1, 0.5])), max_size=12),
    min_size=1,
    max_size=10,
)


# ---------------------------------------------------------------------------------------------- tests


@settings(max_examples=40, deadline=None)
@given(windows=_windows, frame_sizes=st.lists(st.integers(1, 3), min_size=10, max_size=10), stale=st.booleans())
def test_ids_and_detections_equal_the_former_join_registry(
    windows: list[list[tuple[tuple[str | None, ...], float | None, float | None]]], frame_sizes: list[int], stale: bool
) -> None:
    """Random keys with repeats (also within a window), nulls, empty strings and new keys, over many windows
    and frames of one to three windows (optionally with rows of an already stepped window): the same series
    ids, the same detections and the same checkpointed series as the oracle."""
    new, oracle = DetectionStage(TARGETS), _OracleStage(TARGETS)
    w = 0
    for size in frame_sizes:
        if w >= len(windows):
            break
        rows = [
            _row(i, key, plays, skip) for i in range(w, min(w + size, len(windows))) for key, plays, skip in windows[i]
        ]
        if stale and w > 0:
            rows += [_row(w - 1, ("market", "XX", None, None))]  # too late to be stepped, but registered
        if w == 0:
            rows += [_row(0, ("global", None, None, None))]  # the first frame sets the first window
        rows = rows[::-1]  # frames need not be in window order
        frame, until = _frame(rows), BASE_MS + (min(w + size, len(windows)) - 1) * WINDOW_MS
        assert_frame_equal(new.run(frame, until=until), oracle.run(frame, until=until))
        w += size
    assert _series(new) == _series(oracle)


def test_ids_are_dense_and_stable_across_windows() -> None:
    stage = DetectionStage(TARGETS)
    keys = [("market", m, None, None) for m in ("BR", "DE", "FR")] + [("global", None, None, None)]
    first = stage.run(_frame([_row(0, k) for k in keys[:2]]))
    later = stage.run(_frame([_row(1, k) for k in reversed(keys)]))
    for metric, series in _series(stage).items():
        assert series["sid"] == list(range(len(series["sid"]))), metric
    plays = later.filter(pl.col("metric") == "plays")
    sid_of = dict(zip(plays["market"].to_list(), plays["sid"].to_list(), strict=True))
    earlier = first.filter(pl.col("metric") == "plays")
    assert dict(zip(earlier["market"].to_list(), earlier["sid"].to_list(), strict=True)) == {"BR": 0, "DE": 1}
    assert sid_of == {"BR": 0, "DE": 1, "FR": 3, None: 2}  # in order of first appearance, window by window


def test_ids_do_not_depend_on_the_order_of_metrics() -> None:
    rows = [_row(w, (ds, m, p, c)) for w in range(3) for ds in ("market", "platform", "cdn", "global")
            for m, p, c in (("BR", "ios", "edge-1"), (None, "web", None), ("DE", None, "edge-2"))]  # fmt: skip
    forward, backward = DetectionStage(TARGETS), DetectionStage(dict(reversed(TARGETS.items())))
    a, b = forward.run(_frame(rows)), backward.run(_frame(rows))
    for metric in TARGETS:
        assert_frame_equal(a.filter(pl.col("metric") == metric), b.filter(pl.col("metric") == metric))
    assert _series(forward) == _series(backward)


def test_null_dimension_values_are_keys() -> None:
    stage = DetectionStage({"plays": ["market"]})
    keys = [("market", None, None, None), ("market", "", None, None), ("market", None, "ios", None)]
    out = pl.concat([stage.run(_frame([_row(w, k) for k in keys])) for w in range(3)])
    assert out.height == 9
    assert out.group_by("sid").agg(pl.col("market").unique().len(), pl.col("platform").unique().len()).height == 3
    assert out.filter(pl.col("market").is_null() & pl.col("platform").is_null())["sid"].unique().to_list() == [0]
    assert out.filter(pl.col("market") == "")["sid"].unique().to_list() == [1]


class _CollidingRegistry(_KeyRegistry):
    """Every key hashes to one of two values: most lookups collide."""

    @staticmethod
    def _hash(keys: pl.DataFrame) -> np.ndarray:
        return keys.get_column("market").is_null().cast(pl.UInt64).to_numpy()


def test_hash_collisions_never_merge_keys() -> None:
    registry, seen = _CollidingRegistry(), dict[tuple[str | None, ...], int]()
    rng = np.random.default_rng(3)
    pool = [(ds, m, p) for ds in ("market", "platform") for m in ("BR", "DE", None) for p in ("ios", None)]
    for _ in range(12):
        picked = [pool[i] for i in rng.integers(0, len(pool), 8)]
        keys = pl.DataFrame([dict(zip(("dimset", "market", "platform"), k, strict=True)) for k in picked],
                            schema=KEY_SCHEMA)  # fmt: skip
        ids = registry.ids(keys).tolist()
        for key, key_id in zip(picked, ids, strict=True):
            assert seen.setdefault(key, key_id) == key_id  # the same key keeps its id
        assert len(set(ids)) == len(set(picked))  # distinct keys, distinct ids
    assert sorted(seen.values()) == list(range(len(registry)))  # dense


def _simulated_frames(minutes: int = 150, seed: int = 5) -> list[tuple[pl.DataFrame, int]]:
    sim = Simulator(SimulationConfig(start=BASE_MS, minutes=minutes, events_per_minute=1_500, seed=seed))
    validator, processor = EnterpriseDataValidator(), MusicDataProcessor()
    frames = []
    for block in sim.blocks(5):
        processed = processor.process(validator.validate(RawBatch(frame=conform(block), source="t")), final=False)
        if processed.windows:
            frames.append((processed.metrics, processed.windows[-1]))
    validator.watermark.observe_end()
    processed = processor.flush()
    frames.append((processed.metrics, processed.windows[-1]))
    return frames


@pytest.fixture(scope="module")
def simulated() -> list[tuple[pl.DataFrame, int]]:
    """Metric frames of a simulated run with incidents (an outage and late data make zero-filled series)."""
    return _simulated_frames()


def test_a_simulated_run_detects_exactly_as_before(simulated: list[tuple[pl.DataFrame, int]]) -> None:
    targets = load_rules().targets()
    new, oracle = DetectionStage(targets), _OracleStage(targets)
    points = 0
    for metrics, until in simulated:
        got = new.run(metrics, until=until)
        assert_frame_equal(got, oracle.run(metrics, until=until))
        points += got.height
    assert points > 10_000
    assert _series(new) == _series(oracle)
    assert new.series_count == sum(r.frame.height for r in oracle.registries.values())


def test_a_checkpoint_round_trip_continues_exactly(simulated: list[tuple[pl.DataFrame, int]]) -> None:
    targets = load_rules().targets()
    half = len(simulated) // 2
    straight, first = DetectionStage(targets, _ewma), DetectionStage(targets, _ewma)
    for metrics, until in simulated[:half]:
        straight.run(metrics, until=until)
        first.run(metrics, until=until)
    resumed = DetectionStage(dict(reversed(targets.items())), _ewma)  # another metric order: other key ids
    assert resumed.load_state_dict(first.state_dict()) == len(targets)
    assert _series(resumed) == _series(first)
    for metrics, until in simulated[half:]:
        a, b = straight.run(metrics, until=until), resumed.run(metrics, until=until)
        for metric in targets:
            assert_frame_equal(a.filter(pl.col("metric") == metric), b.filter(pl.col("metric") == metric))


def test_a_version_1_checkpoint_of_the_former_stage_loads(simulated: list[tuple[pl.DataFrame, int]]) -> None:
    targets = load_rules().targets()
    half = len(simulated) // 2
    oracle = _OracleStage(targets, _ewma)
    for metrics, until in simulated[:half]:
        oracle.run(metrics, until=until)
    stage = DetectionStage(targets, _ewma)
    assert stage.STATE_VERSION == 1
    assert stage.load_state_dict(oracle.state_dict()) == len(targets)
    for metrics, until in simulated[half:]:
        assert_frame_equal(stage.run(metrics, until=until), oracle.run(metrics, until=until))
    assert _series(stage) == _series(oracle)


@pytest.mark.parametrize(
    ("column", "values", "reason"),
    [("sid", [0, 2], "series ids are not 0..1"), ("market", ["BR", "BR"], "a series key is listed twice")],
)
def test_a_damaged_checkpoint_is_refused_with_the_metric_and_the_reason(
    column: str, values: list[Any], reason: str
) -> None:
    stage = DetectionStage({"plays": ["market"]})
    stage.run(_frame([_row(0, ("market", m, None, None)) for m in ("BR", "DE")]))
    state = stage.state_dict()
    state["metrics"]["plays"]["series"][column] = values
    with pytest.raises(ValueError, match=re.escape(f"detection state of metric 'plays': {reason}")):
        DetectionStage({"plays": ["market"]}).load_state_dict(state)
