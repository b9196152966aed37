"""The compiled robust detector gives the results of its former NumPy form, and many steps in one call give those
of one call per step."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.detect.robust_numpy_reference import NumpyRobustLevelDetector
from tunewatch.detect.base import Detection
from tunewatch.detect.robust import RobustLevelDetector

FIELDS = ("score", "expected", "lower", "upper", "evidence_weight", "evidence_value", "evidence_expected",
          "evidence_excess", "evidence_points")  # fmt: skip


def _stream(noise: str, seed: int, steps: int, series: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Random time steps: a subset of series each, with level shifts (adopted, then reverted), gaps, NaN and
    zero weights."""
    rng = np.random.default_rng(seed)
    out = []
    for t in range(steps):
        ids = np.sort(rng.choice(series, size=int(rng.integers(0, series + 1)), replace=False)).astype(np.int64)
        shifted = 40 <= t % 120 < 75
        if noise == "binomial":
            w = rng.integers(0, 400, ids.size).astype(float)
            v = rng.binomial(w.astype(np.int64), 0.25 if shifted else 0.01) / np.maximum(w, 1.0)
        elif noise == "poisson":
            lam = (0.5 + 20.0 * (ids % 4)) * (0.05 if shifted else 1.0)
            v, w = rng.poisson(lam).astype(float), np.ones(ids.size)
        else:
            v = rng.lognormal(3.0, 0.2, ids.size) * (4.0 if shifted else 1.0)
            w = rng.integers(0, 4, ids.size).astype(float)
        v[rng.random(ids.size) < 0.03] = np.nan
        out.append((ids, v, w))
    return out


def _assert_same(old: Detection, new: Detection, where: str) -> None:
    for f in FIELDS:
        np.testing.assert_allclose(getattr(new, f), getattr(old, f), rtol=1e-12, atol=0.0, equal_nan=True,
                                   err_msg=f"{where}: {f}")  # fmt: skip


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    noise=st.sampled_from(["poisson", "binomial", "relative"]),
    seed=st.integers(0, 2**32 - 1),
    warmup=st.integers(1, 20),
    adopt_after=st.integers(1, 30),
    return_horizon=st.integers(0, 80),
    pools=st.sampled_from([(5, 15), (0, 0), (3, 0), (1, 8)]),
    outlier_gain=st.sampled_from([0.0, 0.3]),
)
def test_the_compiled_detector_equals_the_numpy_form(
    noise: str, seed: int, warmup: int, adopt_after: int, return_horizon: int, pools: tuple[int, int],
    outlier_gain: float,
) -> None:  # fmt: skip
    params = {"noise": noise, "warmup": warmup, "adopt_after": adopt_after, "return_horizon": return_horizon,
              "pool": pools[0], "long_pool": pools[1], "outlier_gain": outlier_gain}  # fmt: skip
    old, new = NumpyRobustLevelDetector(**params), RobustLevelDetector(**params)  # type: ignore[arg-type]
    for t, (ids, v, w) in enumerate(_stream(noise, seed, 300, 12)):
        _assert_same(old.step(t, ids, v, w), new.step(t, ids, v, w), f"step {t}")
    saved_old, saved_new = old.state_dict(), new.state_dict()
    assert saved_old.keys() == saved_new.keys()
    for k, value in saved_old.items():
        np.testing.assert_allclose(np.asarray(saved_new[k], dtype=float), np.asarray(value, dtype=float),
                                   rtol=1e-12, atol=0.0, equal_nan=True, err_msg=k)  # fmt: skip


def test_the_stream_exercises_adoption_returns_and_the_beta_binomial_tail() -> None:
    """The equality above is tested where it matters: shifts are adopted, series go back, tails are extreme."""
    det = RobustLevelDetector(noise="binomial", warmup=5, adopt_after=10, return_horizon=60)
    adopted = back = extreme = 0
    for t, (ids, v, w) in enumerate(_stream("binomial", 3, 300, 12)):
        had_ref = np.isfinite(det.state_dict()["ref"]) if det.state_dict()["ref"].size else np.zeros(0, bool)
        d = det.step(t, ids, v, w)
        ref = det.state_dict()["ref"]
        now = np.isfinite(ref) & ~np.isneginf(ref)
        adopted += int((now[: had_ref.size] & ~had_ref).sum())
        back += int(((d.score == 0.0) & np.isfinite(d.expected)).sum())
        extreme += int((d.score > 0.9).sum())
    assert adopted > 0 and back > 0 and extreme > 0


@pytest.mark.parametrize("noise", ["poisson", "binomial", "relative"])
def test_many_steps_in_one_call_equal_one_call_per_step(noise: str) -> None:
    stream = _stream(noise, 11, 200, 9)
    one, many = RobustLevelDetector(noise=noise), RobustLevelDetector(noise=noise)  # type: ignore[arg-type]
    singles = [one.step(t, ids, v, w) for t, (ids, v, w) in enumerate(stream)]
    starts = np.cumsum([0] + [ids.size for ids, _, _ in stream])
    batched = many.step_many(*(np.concatenate(c) for c in zip(*stream, strict=True)), starts)
    for f in FIELDS:
        np.testing.assert_array_equal(getattr(batched, f), np.concatenate([getattr(d, f) for d in singles]))
    for k, value in one.state_dict().items():
        np.testing.assert_array_equal(many.state_dict()[k], value)


def test_a_series_twice_in_one_step_is_two_points_in_turn() -> None:
    twice, apart = RobustLevelDetector(noise="poisson", warmup=1), RobustLevelDetector(noise="poisson", warmup=1)
    for t in range(5):
        d = twice.step(t, np.array([3, 1, 3]), np.array([5.0, 2.0, 9.0]), np.ones(3))
        first = apart.step(t, np.array([3, 1]), np.array([5.0, 2.0]), np.ones(2))
        second = apart.step(t, np.array([3]), np.array([9.0]), np.ones(1))
        np.testing.assert_array_equal(d.expected, np.concatenate([first.expected, second.expected]))
    with pytest.raises(ValueError, match="series ids"):
        twice.step(5, np.array([-1]), np.ones(1), np.ones(1))
