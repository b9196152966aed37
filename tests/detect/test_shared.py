"""Metrics whose detectors share a configuration are stepped by one shared detector: the same detections and the
same checkpoints as one detector per metric, bit for bit."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tests.detect.test_stage_registry import _simulated_frames
from tunewatch.alert.rules import load_rules
from tunewatch.detect.base import VectorDetector
from tunewatch.detect.robust import RobustLevelDetector
from tunewatch.detect.shared import MetricView
from tunewatch.detect.stage import DetectionStage, _noise
from tunewatch.process.catalogue import MetricSpec

Frames = list[tuple[pl.DataFrame, int]]


class _Alone(RobustLevelDetector):
    """The robust detector under another type: never shared (one detector per metric, as before sharing)."""


def _alone(spec: MetricSpec) -> VectorDetector:
    return _Alone(noise=_noise(spec))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def frames() -> Frames:
    return _simulated_frames(minutes=100, seed=11)


def test_shared_detectors_detect_and_checkpoint_exactly_as_one_per_metric(frames: Frames) -> None:
    targets = load_rules().targets()
    shared, alone = DetectionStage(targets), DetectionStage(targets, _alone)
    views = [m for m, d in shared.detectors.items() if isinstance(d, MetricView)]
    assert len(views) >= 10 and not any(isinstance(d, MetricView) for d in alone.detectors.values())
    points = 0
    for metrics, until in frames:
        got = shared.run(metrics, until=until)
        assert_frame_equal(got, alone.run(metrics, until=until))
        points += got.height
    assert points > 5_000
    a, b = shared.state_dict()["metrics"], alone.state_dict()["metrics"]
    for m in targets:
        sa, sb = a[m]["detector"], b[m]["detector"]
        assert sa.keys() == sb.keys()
        for k in sa:
            assert np.array_equal(np.asarray(sa[k]), np.asarray(sb[k])), (m, k)


def test_a_checkpoint_of_shared_detectors_continues_exactly(frames: Frames) -> None:
    targets = load_rules().targets()
    half = len(frames) // 2
    straight, first = DetectionStage(targets), DetectionStage(targets)
    for metrics, until in frames[:half]:
        straight.run(metrics, until=until)
        first.run(metrics, until=until)
    resumed = DetectionStage(dict(reversed(targets.items())))  # another order: other rows of the shared detectors
    assert resumed.load_state_dict(first.state_dict()) == len(targets)
    for metrics, until in frames[half:]:
        a, b = straight.run(metrics, until=until), resumed.run(metrics, until=until)
        for m in targets:
            assert_frame_equal(a.filter(a["metric"] == m), b.filter(b["metric"] == m))
