"""The robust detector's pooled evidence, rate uncertainty and state (tunewatch.detect.robust)."""

from __future__ import annotations

import numpy as np
import pytest

from tunewatch.detect.robust import RobustLevelDetector

MIN = 60_000


def _failure_series(
    rng: np.random.Generator, minutes: int, attempts: float, rate: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    w = rng.poisson(attempts, minutes).astype(float)
    w = np.maximum(w, 1.0)
    k = rng.binomial(w.astype(int), rate)
    return k / w, w


def _run(det: RobustLevelDetector, values: np.ndarray, weights: np.ndarray, n_series: int = 1) -> list:
    out = []
    for i in range(values.shape[0]):
        ids = np.arange(n_series)
        out.append(det.step(i * MIN, ids, np.atleast_1d(values[i]), np.atleast_1d(weights[i])))
    return out


def test_a_sustained_shift_of_a_small_series_is_found_by_the_pooled_evidence() -> None:
    """Ten attempts a minute, failures from 2 % to 30 % for 15 minutes: minute by minute the shift is within
    the noise, over the last five minutes it is not; on most seeds only the pooled detector reaches 0.5 for
    three minutes in a row within the first eight minutes."""
    found = {1: 0, 5: 0}
    for seed in range(20):
        rng = np.random.default_rng(seed)
        rate = np.full(260, 0.02)
        rate[240:255] = 0.30
        x, w = _failure_series(rng, 260, 10.0, rate)
        for pool in found:
            out = _run(RobustLevelDetector(noise="binomial", pool=pool, long_pool=15 if pool > 1 else 0), x, w)
            s = np.nan_to_num(np.array([o.score[0] for o in out]))
            run = np.convolve(s[240:248] >= 0.5, np.ones(3), mode="valid")
            found[pool] += bool((run == 3).any())
    assert found[5] >= 12, found
    assert found[5] >= found[1] + 10, found


def test_quiet_small_series_do_not_alarm_more_with_pooling() -> None:
    """Noise only (200 series, 6 hours of 8 attempts a minute at 2 %): the pooled detector's share of points
    scoring 0.5 or more stays tiny."""
    rng = np.random.default_rng(3)
    n, minutes = 200, 360
    w = np.maximum(rng.poisson(8.0, (minutes, n)), 1).astype(float)
    x = rng.binomial(w.astype(int), 0.02) / w
    det = RobustLevelDetector(noise="binomial")
    scores = np.array([np.nan_to_num(det.step(i * MIN, np.arange(n), x[i], w[i]).score) for i in range(minutes)])
    assert (scores[60:] >= 0.5).mean() < 0.002


def test_a_rate_learnt_from_few_attempts_is_not_read_as_certain() -> None:
    """No failure in the last ~500 attempts, then 2 in 40: the binomial tail against the learnt rate says
    "impossible", the beta-binomial tail of what 500 attempts can tell says "unusual", under 4 deviations."""
    minutes = 120
    x = np.zeros(minutes)
    w = np.full(minutes, 40.0)
    x[-1] = 2 / 40
    out = _run(RobustLevelDetector(noise="binomial", pool=1, long_pool=0), x, w)
    assert out[-1].score[0] < 0.5
    assert out[-1].expected[0] < 0.01  # the learnt rate is near 0: only its uncertainty keeps the score down


def test_the_detection_reports_the_weight_its_evidence_rests_on() -> None:
    rng = np.random.default_rng(1)
    rate = np.full(80, 0.02)
    rate[70:] = 0.3
    x, w = _failure_series(rng, 80, 10.0, rate)
    out = _run(RobustLevelDetector(noise="binomial"), x, w)
    quiet, late = out[40], out[-1]
    assert quiet.evidence_weight is not None and late.evidence_weight is not None
    pooled = (pytest.approx(w[40]), pytest.approx(w[36:41].sum()), pytest.approx(w[26:41].sum()))
    assert quiet.evidence_weight[0] in pooled
    # the pooled minutes say more here
    assert late.evidence_weight[0] in (pytest.approx(w[-5:].sum()), pytest.approx(w[-15:].sum()))
    assert late.score[0] > 0.5


def test_state_round_trip_continues_identically_and_version_1_still_loads() -> None:
    rng = np.random.default_rng(5)
    n = 30
    w = np.maximum(rng.poisson(10.0, (150, n)), 1).astype(float)
    x = rng.binomial(w.astype(int), 0.05) / w
    ids = np.arange(n)
    whole = RobustLevelDetector(noise="binomial")
    first = RobustLevelDetector(noise="binomial")
    for i in range(100):
        whole.step(i * MIN, ids, x[i], w[i])
        first.step(i * MIN, ids, x[i], w[i])
    resumed = RobustLevelDetector(noise="binomial")
    resumed.load_state_dict(first.state_dict())
    for i in range(100, 150):
        a = whole.step(i * MIN, ids, x[i], w[i])
        b = resumed.step(i * MIN, ids, x[i], w[i])
        np.testing.assert_array_equal(a.score, b.score)
        np.testing.assert_array_equal(a.expected, b.expected)
    old = {k: v for k, v in first.state_dict().items() if k in ("level", "trend", "var", "n")} | {"version": 1}
    migrated = RobustLevelDetector(noise="binomial")
    migrated.load_state_dict(old)
    det = migrated.step(100 * MIN, ids, x[100], w[100])
    assert np.isfinite(det.score).all()
    with pytest.raises(ValueError, match="state version 7"):
        migrated.load_state_dict({**old, "version": 7})


@pytest.mark.parametrize(("kwargs", "message"), [({"pool": -1}, "pool"), ({"outlier_gain": 1.5}, "outlier_gain")])
def test_settings_out_of_range_are_named(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RobustLevelDetector(**kwargs)  # type: ignore[arg-type]


def test_beta_binomial_tails_equal_the_sum_of_their_probabilities() -> None:
    """The vectorised tails agree with SciPy's probabilities summed term by term (SciPy's own ``sf`` loses the
    small upper tails to cancellation); beyond the exact range the normal approximation is close."""
    from scipy import stats

    from tunewatch.detect.robust import EXACT_BETABINOM_MAX_N, betabinom_tails

    rng = np.random.default_rng(2)
    n = rng.integers(1, 400, 60).astype(float)
    k = np.floor(rng.random(60) * (n + 1))
    a, b = rng.uniform(0.5, 20, 60), rng.uniform(5, 2000, 60)
    upper, lower = betabinom_tails(k, n, a, b)
    for i in range(60):
        pmf = stats.betabinom.pmf(np.arange(n[i] + 1), n[i], a[i], b[i])
        assert upper[i] == pytest.approx(pmf[int(k[i]) :].sum(), rel=1e-9, abs=1e-300)
        assert lower[i] == pytest.approx(pmf[: int(k[i]) + 1].sum(), rel=1e-9, abs=1e-300)
    big_n = np.array([EXACT_BETABINOM_MAX_N * 2.0])
    big_k = np.array([EXACT_BETABINOM_MAX_N * 2.0 * 0.3])
    up, lo = betabinom_tails(big_k, big_n, np.array([3000.0]), np.array([7000.0]))
    assert up[0] == pytest.approx(0.5, abs=0.02) and lo[0] == pytest.approx(0.5, abs=0.02)
    assert up[0] == pytest.approx(float(stats.betabinom.sf(big_k[0] - 1, big_n[0], 3000, 7000)), abs=5e-3)
