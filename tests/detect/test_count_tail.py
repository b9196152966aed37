"""Exact count tails over the last minutes (detect/count_tail.py): exact tails, calibration on pure noise,
dispersion learnt from the slice's own calm minutes, drops found, state kept across a checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats

from tunewatch.detect.count_tail import SCAN_FACTOR, CountTail, _log_lower_tail, scan_factor

MINUTE = 60_000


def _run(ct: CountTail, x: np.ndarray, expected: np.ndarray | float, **guards: float):
    """Scan a (minutes, series) matrix of counts, minute by minute in one call."""
    minutes, series = x.shape
    exp = np.broadcast_to(np.asarray(expected, dtype=np.float64), x.shape)
    windows = np.repeat(np.arange(minutes, dtype=np.int64) * MINUTE, series)
    sids = np.tile(np.arange(series, dtype=np.int64), minutes)
    return ct.scan(windows, sids, x.ravel().astype(np.float64), exp.ravel().copy(), **guards)


@pytest.mark.parametrize(("k", "mean", "phi"), [(0, 10.0, 0.0), (3, 17.4, 0.0), (40, 60.0, 0.0), (2, 9.0, 0.05),
                                                (9600, 10_000.0, 0.0), (30, 80.0, 0.3)])  # fmt: skip
def test_the_lower_tail_is_the_negative_binomial_s(k: int, mean: float, phi: float) -> None:
    if phi == 0.0:
        want = stats.poisson.logcdf(k, mean)
    else:
        r = 1.0 / phi
        want = stats.nbinom.logcdf(k, r, r / (r + mean))
    assert _log_lower_tail(float(k), mean, phi) == pytest.approx(want, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("rate", [2.0, 3.0, 5.0, 10.0, 20.0])
def test_pure_poisson_noise_is_not_read_as_a_drop_more_often_than_the_tail_says(rate: float) -> None:
    """On Poisson series of known mean, the scan-corrected tail falls below p at most about p of the minutes
    (the correction for scanning 15 lengths is what makes that so), and not far less (it is not blind)."""
    rng = np.random.default_rng(11)
    x = rng.poisson(rate, size=(3000, 200))
    ev = _run(CountTail(), x, rate)
    judged = ev.z[200 * 60 :]  # after the warm-up
    p = 1e-3
    rate_below = float(np.mean(judged <= special.ndtri(p)))
    assert rate_below <= 1.3 * p
    assert rate_below >= 0.1 * p


def test_overdispersed_traffic_teaches_its_dispersion_and_stays_calibrated() -> None:
    """Gamma-Poisson traffic (relative rate error 30 %, phi 0.09) judged with the Poisson would be read as drops
    all the time; the dispersion learnt from its own calm minutes keeps the false rate near the tail's."""
    rng = np.random.default_rng(5)
    rate = np.full((3000, 200), 6.0) * rng.gamma(1 / 0.09, 0.09, size=(3000, 200))
    x = rng.poisson(rate)
    ct = CountTail()
    ev = _run(ct, x, 6.0)
    assert 0.012 < float(np.median(ct.dispersion)) < 0.025  # learnt at the 5-minute scale: 0.09 / 5 = 0.018
    p = 1e-3
    assert float(np.mean(ev.z[200 * 300 :] <= special.ndtri(p))) <= 3 * p
    poisson = CountTail(prior_phi=0.0, prior_minutes=1e12, warmup=0.0)  # what it learns never counts: Poisson
    ev0 = _run(poisson, x, 6.0)
    assert float(np.mean(ev0.z[200 * 300 :] <= special.ndtri(p))) > 5 * p


def test_a_small_slice_going_silent_is_a_drop_within_minutes_and_says_what_it_rests_on() -> None:
    """Two ads a minute, then none: 4 deviations after 7 minutes of silence at most (no ad in 7 minutes where 14
    were expected), the evidence spans the silent minutes, observed 0 against their expected sum."""
    x = np.r_[np.random.default_rng(3).poisson(2.0, 120), np.zeros(10)][:, None]
    ev = _run(CountTail(), x, 2.0)
    z = ev.z[120:]
    first = int(np.argmax(z <= -4.0))
    assert z[first] <= -4.0 and first < 7
    assert ev.points[120 + first] == first + 1
    assert ev.observed[120 + first] == 0.0 and ev.expected[120 + first] == pytest.approx(2.0 * (first + 1))
    assert np.all(ev.z[:30] == 0.0)  # nothing judged before the warm-up's calm minutes


def test_guards_leave_out_drops_too_small_to_matter() -> None:
    """The same silence judged only where at least 30 events are missing: not before 15 minutes."""
    x = np.r_[np.full(100, 2.0), np.zeros(10)][:, None]
    ev = _run(CountTail(), x, 2.0, min_excess=30.0)
    assert np.all(ev.points[100:] == 0.0) and np.all(ev.z[100:] == 0.0)


def test_an_incident_does_not_teach_the_dispersion() -> None:
    x = np.r_[np.random.default_rng(8).poisson(3.0, 200), np.zeros(60)][:, None]
    ct = CountTail()
    _run(ct, x[:200], 3.0)
    before = ct.dispersion.copy()
    ev = _run(ct, x[200:], 3.0)
    assert ct.dispersion == pytest.approx(before)
    assert ev.z[-1] < -8.0


def test_a_gap_starts_the_window_again() -> None:
    """Minutes that are not consecutive are not summed as if they were."""
    ct = CountTail()
    _run(ct, np.full((100, 1), 3.0), 3.0)
    ev = ct.scan(np.array([200 * MINUTE]), np.array([0]), np.array([0.0]), np.array([3.0]))
    assert ev.points[0] == 1.0


def test_a_restored_state_continues_exactly() -> None:
    rng = np.random.default_rng(2)
    x = np.r_[rng.poisson(4.0, size=(150, 3)), np.zeros((8, 3))]
    whole = _run(CountTail(), x, 4.0)
    first = CountTail()
    _run(first, x[:100], 4.0)
    second = CountTail()
    second.load_state_dict(first.state_dict())
    windows = np.repeat(np.arange(100, 158, dtype=np.int64) * MINUTE, 3)
    sids = np.tile(np.arange(3, dtype=np.int64), 58)
    rest = second.scan(windows, sids, x[100:].ravel().astype(float), np.full(174, 4.0))
    assert np.array_equal(rest.z, whole.z[300:]) and np.array_equal(rest.points, whole.points[300:])
    with pytest.raises(ValueError, match="ring_x"):
        CountTail(span=10).load_state_dict(first.state_dict())


def test_the_scan_factor_is_the_documented_one() -> None:
    assert SCAN_FACTOR == 5.0
    assert scan_factor(np.array([50.0]))[0] == SCAN_FACTOR


def test_the_scan_factor_grows_with_the_slice_s_rate() -> None:
    """A slice of a few events a minute has few distinct sums to scan: its correction is smaller (never larger)
    than a busy slice's, and never decreases with the rate."""
    rates = np.geomspace(0.1, 100.0, 60)
    f = scan_factor(rates)
    assert np.all(np.diff(f) >= 0.0)
    assert f[0] < 2.0 and f[-1] == SCAN_FACTOR


def test_a_small_slice_s_tail_is_read_at_its_own_scan_correction() -> None:
    """About 3 ads a minute, then none for 4 minutes (0 where 11.8 were expected, a raw tail of 7.5e-6): beyond 4
    deviations with the correction measured at 3 events a minute; the one factor of 5 used before for every rate
    read it as 3.96."""
    x = np.r_[np.full(200, 3.0), np.zeros(4)][:, None]
    ev = _run(CountTail(prior_phi=0.0), x, 2.95)
    assert int(ev.points[-1]) == 4 and ev.observed[-1] == 0.0 and ev.expected[-1] == pytest.approx(11.8)
    raw = float(np.exp(_log_lower_tail(0.0, 11.8, 0.0)))
    assert ev.z[-1] <= -4.0
    assert special.ndtri(min(raw * SCAN_FACTOR, 0.5)) > -4.0


def test_a_drop_that_has_ended_is_not_judged_on_its_old_minutes() -> None:
    """Ten silent minutes then traffic back at its rate, judged with a rule's guards (half or less of the expected,
    10 events missing): the evidence ends within 4 minutes of the return (the newer half of a judged run must be
    low too), although the last 15 minutes taken together would still pass the guards."""
    x = np.r_[np.full(100, 4.0), np.zeros(10), np.full(8, 4.0)][:, None]
    ev = _run(CountTail(), x, 4.0, min_ratio=2.0, min_excess=10.0)
    assert ev.z[109] < -8.0
    assert np.all(ev.z[114:] == 0.0)
    assert float(x[100:115].sum()) * 2.0 <= 4.0 * 15  # at 114, the last 15 minutes together would still pass them
