"""A ratio of a rare outcome (1 % failures over ~50 plays a minute) keeps its level: with the full gain, a few
failure-free minutes pulled the expected rate to ~0, and normal minutes then read as surges."""

from __future__ import annotations

import numpy as np
import pytest

from tunewatch.detect.robust import RobustLevelDetector


def _min_expected(rare_gain: bool, seed: int) -> float:
    rng = np.random.default_rng(seed)
    n = 1440
    attempts = rng.poisson(50, n).astype(np.float64)
    failures = rng.binomial(attempts.astype(np.int64), 0.012)
    det = RobustLevelDetector(noise="binomial", rare_gain=rare_gain)
    out = det.step_many(
        np.zeros(n, dtype=np.int64), failures / np.maximum(attempts, 1.0), attempts, np.arange(n + 1, dtype=np.int64)
    )
    return float(np.nanmin(out.expected[det.warmup :]))


@pytest.mark.parametrize("seed", range(8))
def test_rare_outcome_rate_keeps_its_level(seed: int) -> None:
    assert _min_expected(True, seed) > 0.2 * 0.012


def test_full_gain_loses_the_level_of_a_rare_outcome() -> None:
    # the behaviour the option exists for: without it most of the same days fall below a fifth of the rate
    lost = sum(_min_expected(False, seed) < 0.2 * 0.012 for seed in range(8))
    assert lost >= 4
