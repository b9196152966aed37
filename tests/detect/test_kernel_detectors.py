"""The kernel detectors: identical streaming / chunk / many-series forms, checkpoints, and behaviour."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tunewatch.detect import kernel as k
from tunewatch.detect.defaults import LABEL_FREE_THRESHOLD, SERIES_DEFAULT
from tunewatch.detect.detectors import (
    DETECTORS,
    ChangePointDetector,
    EnsembleDetector,
    LevelScaleDetector,
    SeasonalDetector,
)
from tunewatch.detect.kernel_detector import DAY_MS
from tunewatch.detect.shape import shape_width

MIN = 60_000
#: the flatline channel's header columns (state version 9): absent from the rows of earlier versions
FLATLINE_COLUMNS = range(k.LASTX, k.QMAX + 1)
#: the series default as it was before the flatline channel (state version 8): old checkpoints resume with it
DEFAULT_V8 = {**SERIES_DEFAULT, "quiet_decay": 0.0}


def _older(state: dict[str, Any], version: int) -> dict[str, Any]:
    """``state`` (the flatline channel off) as a checkpoint of an earlier ``version`` (8 or before): without the
    flatline channel's settings and header columns."""
    assert not state["params"]["quiet_decay"]
    params = {n: v for n, v in state["params"].items() if not n.startswith("quiet_")}
    rows = np.delete(state["states"], FLATLINE_COLUMNS, axis=1)
    return {**state, "version": version, "params": params, "states": rows}


def _series(seed: int, n: int, nan_rate: float, jitter: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    steps = rng.integers(1, 4, n) * MIN if jitter else np.full(n, MIN)
    t = np.cumsum(steps)
    x = 50 + 10 * np.sin(t / DAY_MS * 2 * np.pi) + rng.normal(0, 2, n)
    x[rng.random(n) < nan_rate] = np.nan
    x[rng.random(n) < 0.02] += 40
    w = rng.integers(0, 50, n).astype(float)
    return t, x, w


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    n=st.integers(1, 400),
    nan_rate=st.sampled_from([0.0, 0.1]),
    jitter=st.booleans(),
    kind=st.sampled_from(sorted(DETECTORS)),
    noise=st.sampled_from(["relative", "poisson", "binomial"]),
    extra=st.sampled_from(
        [
            {},
            {"weekly_bins": 12, "weekly_period_ms": 4 * 3_600_000, "tail_bins": 8, "tail_decay_long": 0.999},
            {"trend": 0.2, "auto_count": True, "tail_bins": 8, "period_ring": 16, "period_block": 2},
            {"tail_bins": 8, "tail_decay_long": 0.999, "run_learn": 2.0, "episode_gap": 20.0, "damp": 0.2},
            {"auto_ratio": True, "auto_count": True, "tail_bins": 8},
            {"tail_bins": 8, "damp": 0.2, "shape_blocks": 3, "shape_block": 2, "shape_protos": 4},
            {"tail_bins": 8, "auto_count": True, "quiet_decay": 0.99, "quiet_cap": 3.0},
        ]
    ),
)
def test_streaming_chunk_and_many_series_forms_are_identical(
    seed: int, n: int, nan_rate: float, jitter: bool, kind: str, noise: str, extra: dict[str, float]
) -> None:
    t, x, w = _series(seed, n, nan_rate, jitter)
    if noise == "binomial":
        x = np.clip(x / 100.0, 0.0, 1.0)
    if extra.get("auto_count") and seed % 2:
        x = np.round(np.abs(x))  # a count series: the detected count noise takes over
    if extra.get("quiet_decay") and seed % 4 == 0:
        x[n // 3 : n // 2] = x[n // 3 - 1] if n > 3 else x[n // 3 : n // 2]  # stuck: the flatline channel speaks
    if extra.get("auto_ratio") and seed % 3 == 0:
        x = np.clip((x - 50.0) / 100.0, 0.0, 1.0)  # a proportion with zeros: the detected binomial noise takes over
    if kind == "changepoint":  # the surprise tails calibrate the point evidence, which the change-point kind has not
        extra = {name: v for name, v in extra.items() if name != "tail_bins"}
    settings_ = {"noise": noise, "warmup": 5, "period_ms": 3_600_000, **extra}
    chunked = DETECTORS[kind](**settings_).chunk(t, x, w, series=3)
    streaming = DETECTORS[kind](**settings_)
    points = [streaming.update(int(ti), float(xi), float(wi), series=3) for ti, xi, wi in zip(t, x, w, strict=True)]
    # many series at once: series 3 is the one under test, the others get other values at the same steps
    many = DETECTORS[kind](**settings_)
    rows = []
    for i in range(n):
        ids = np.array([7, 3, 0])
        d = many.step(int(t[i]), ids, np.array([x[i] * 2, x[i], -x[i]]), np.array([w[i], w[i], 1.0]))
        rows.append((d.score[1], d.expected[1], d.lower[1], d.upper[1], d.source[1], d.run_ms[1]))  # type: ignore[index]
    got_stream = np.array([(p.score, p.expected, p.lower, p.upper, p.run_ms) for p in points]).reshape(-1, 5)
    got_many = np.array(rows, dtype=float).reshape(-1, 6)
    ref = np.column_stack([chunked.score, chunked.expected, chunked.lower, chunked.upper, chunked.run_ms])
    np.testing.assert_array_equal(got_stream, ref)
    np.testing.assert_array_equal(got_many[:, [0, 1, 2, 3, 5]], ref)
    np.testing.assert_array_equal(got_many[:, 4], chunked.source)
    np.testing.assert_array_equal(streaming.state_dict()["states"][3], many.state_dict()["states"][3])


def test_checkpoint_restores_exactly_and_is_versioned() -> None:
    t, x, _w = _series(1, 600, 0.05, True)
    whole = EnsembleDetector(bins=24).chunk(t, x)
    first = EnsembleDetector(bins=24)
    first.chunk(t[:300], x[:300])
    state = first.state_dict()
    resumed = EnsembleDetector(bins=24)
    resumed.load_state_dict(state)
    rest = resumed.chunk(t[300:], x[300:])
    np.testing.assert_array_equal(rest.score, whole.score[300:])
    assert EnsembleDetector(bins=24).bytes_per_series == (k.HEADER + 24) * 8
    full = EnsembleDetector(bins=24, weekly_bins=168, tail_bins=24, tail_decay_long=0.999)
    assert full.bytes_per_series == (k.HEADER + 24 + 168 + 2 * 2 * 24) * 8  # 2 sides x 2 memories
    with pytest.raises(ValueError, match="version"):
        resumed.load_state_dict({**state, "version": 99})
    # version-3 (no quiet-time or proportion column, no episode or proportion settings) and version-4 checkpoints
    # (no proportion column or setting) are adopted and resume exactly
    v8_rows = np.delete(state["states"], FLATLINE_COLUMNS, axis=1)
    v4 = {
        **state,
        "version": 4,
        "params": {n: v for n, v in state["params"].items() if n != "auto_ratio" and not n.startswith("quiet_")},
        "states": np.delete(v8_rows, k.UNIT, axis=1),
    }
    v3 = {
        **v4,
        "version": 3,
        "params": {n: v for n, v in v4["params"].items() if n not in ("run_learn", "episode_gap")},
        "states": np.delete(v4["states"], k.QUIET, axis=1),
    }
    for old in (v4, v3):
        adopted = EnsembleDetector(bins=24)
        adopted.load_state_dict(old)
        np.testing.assert_array_equal(adopted.chunk(t[300:], x[300:]).score, whole.score[300:])
    with pytest.raises(ValueError, match="params differ"):
        EnsembleDetector(bins=12).load_state_dict(state)


def test_a_version_5_checkpoint_with_cusum_tails_is_adopted() -> None:
    """Version 5 kept surprise tails for the CUSUM too (per memory: the point's up and down, then the CUSUM's);
    version 6 drops them and the ``cusum_z`` that scaled them, and resumes exactly."""
    t, x, _w = _series(2, 800, 0.0, False)
    settings_ = {"bins": 24, "tail_bins": 6, "tail_decay_long": 0.999}
    whole = EnsembleDetector(**settings_).chunk(t, x)
    first = EnsembleDetector(**settings_)
    first.chunk(t[:400], x[:400])
    state = first.state_dict()
    rows, tb, h = np.delete(state["states"], FLATLINE_COLUMNS, axis=1), 6, k.LASTX  # version 5's header
    junk = np.full((rows.shape[0], 2 * tb), 1e6)  # the CUSUM's tails: dropped, whatever they held
    v5_rows = np.hstack([rows[:, :h], rows[:, h : h + 2 * tb], junk, rows[:, h + 2 * tb : h + 4 * tb], junk,
                         rows[:, h + 4 * tb :]])  # fmt: skip
    v5 = {**state, "version": 5, "params": {**state["params"], "cusum_z": 2.0}, "states": v5_rows}
    adopted = EnsembleDetector(**settings_)
    adopted.load_state_dict(v5)
    np.testing.assert_array_equal(np.delete(adopted.state_dict()["states"], FLATLINE_COLUMNS, axis=1), rows)
    np.testing.assert_array_equal(adopted.chunk(t[400:], x[400:]).score, whole.score[400:])
    # without tails the layout and the settings (cusum_z still scales the CUSUM's evidence) are unchanged
    plain = EnsembleDetector(bins=24, cusum_z=3.0)
    plain.chunk(t[:400], x[:400])
    old = _older(plain.state_dict(), 5)
    again = EnsembleDetector(bins=24, cusum_z=3.0)
    again.load_state_dict(old)
    np.testing.assert_array_equal(np.delete(again.state_dict()["states"], FLATLINE_COLUMNS, axis=1), old["states"])
    with pytest.raises(ValueError, match="params differ"):
        EnsembleDetector(bins=24).load_state_dict(old)


def test_settings_are_validated_with_the_name() -> None:
    with pytest.raises(ValueError, match="alpha"):
        LevelScaleDetector(alpha=0.0)
    with pytest.raises(ValueError, match="unknown setting"):
        LevelScaleDetector(colour="red")
    with pytest.raises(ValueError, match="fixed"):
        LevelScaleDetector(bins=10)
    with pytest.raises(ValueError, match="tail_heavy"):
        LevelScaleDetector(tail_bins=8, tail_heavy=2.0)
    with pytest.raises(ValueError, match="tail_decay"):
        LevelScaleDetector(tail_bins=8, tail_decay_long=1.5)
    with pytest.raises(ValueError, match="weekly_bins"):
        SeasonalDetector(weekly_bins=7, weekly_period_ms=0)
    with pytest.raises(ValueError, match="tail_bins"):
        ChangePointDetector(tail_bins=8)  # nothing for the tails to calibrate
    with pytest.raises(ValueError, match="shape_blocks"):
        EnsembleDetector(shape_blocks=-1)
    with pytest.raises(ValueError, match="shape_vigilance"):
        EnsembleDetector(shape_blocks=8, shape_vigilance=0.0)


def test_spike_scores_high_with_explanation_and_normal_points_low() -> None:
    rng = np.random.default_rng(0)
    x = 100 + rng.normal(0, 1, 300)
    x[250] = 130
    d = LevelScaleDetector(warmup=20, cal=0.0).chunk(np.arange(300) * MIN, x)
    assert d.score[250] > 0.9
    assert np.nanmax(d.score[:250]) < 0.6
    assert d.lower[250] < 100 < d.upper[250] and abs(d.expected[250] - 100) < 1
    assert d.source is not None and d.source[250] == 1  # level
    assert np.isnan(d.score[:20]).all()  # warm-up


def test_missing_points_are_not_scored_nor_learned() -> None:
    det = LevelScaleDetector(warmup=3)
    for i, v in enumerate([10.0, 11.0, 10.0, 11.0, 10.0]):
        det.update(i * MIN, v)
    before = det.state_dict()["states"].copy()
    p = det.update(5 * MIN, float("nan"))
    assert np.isnan(p.score)
    gap = det.update(6 * MIN, 10.5, weight=0.0)
    assert np.isnan(gap.score)
    np.testing.assert_array_equal(det.state_dict()["states"], before)


def test_level_shift_fires_the_change_point_detector_and_it_adapts() -> None:
    rng = np.random.default_rng(2)
    x = np.r_[rng.normal(10, 1, 400), rng.normal(11.5, 1, 400)]  # a 1.5-sigma shift: weak point by point
    d = ChangePointDetector(warmup=20, cal=0.0).chunk(np.arange(800) * MIN, x)
    assert d.source is not None and d.run_ms is not None
    fired = np.flatnonzero(d.source == 3)
    assert fired.size and 400 <= fired[0] < 460
    assert abs(d.expected[-1] - 11.5) < 0.5  # re-based on the new level


def test_seasonal_model_learns_the_daily_shape() -> None:
    t = np.arange(5 * 288) * 5 * MIN
    rng = np.random.default_rng(3)
    x = 50 + 30 * np.sin(t / DAY_MS * 2 * np.pi) + rng.normal(0, 1, t.size)
    seasonal = SeasonalDetector(bins=288, warmup=20).chunk(t, x)
    level = LevelScaleDetector(warmup=20).chunk(t, x)
    last_day = slice(4 * 288, 5 * 288)
    err_seasonal = np.mean(np.abs(seasonal.expected[last_day] - x[last_day]))
    err_level = np.mean(np.abs(level.expected[last_day] - x[last_day]))
    assert err_seasonal < 5 < err_level


def test_small_poisson_counts_are_not_alarming_but_large_jumps_are() -> None:
    rng = np.random.default_rng(4)
    x = rng.poisson(0.5, 400).astype(float)
    x[390] = 12
    d = LevelScaleDetector(noise="poisson", warmup=20, cal=0.0).chunk(np.arange(400) * MIN, x)
    normal = d.score[20:380]
    assert np.nanmax(normal) < 0.5  # counts of 2-4 against 0.5 are ordinary
    assert d.score[390] > 0.5  # beyond 4 sigma (the rules' default min_score)


def test_ratio_deviation_counts_more_with_a_larger_denominator() -> None:
    n = 200
    rate = np.full(n, 0.10)
    rate[-1] = 0.16

    def last_score(denominator: float) -> float:
        det = LevelScaleDetector(noise="binomial", warmup=20, cal=0.0)
        return float(det.chunk(np.arange(n) * MIN, rate, np.full(n, denominator)).score[-1])

    assert last_score(50.0) < 0.3 < last_score(5000.0)


def test_run_length_reports_how_long_a_series_has_been_anomalous() -> None:
    x = np.r_[np.full(100, 10.0) + np.tile([0.1, -0.1], 50), np.full(5, 30.0)]
    d = LevelScaleDetector(warmup=10, cal=0.0).chunk(np.arange(105) * MIN, x)
    assert d.run_ms is not None
    assert list(d.run_ms[100:]) == [0.0, MIN, 2 * MIN, 3 * MIN, 4 * MIN]


def test_streaming_form_names_the_model_and_the_duration() -> None:
    x = [10.0 + (0.1 if i % 2 else -0.1) for i in range(100)] + [30.0, 30.0, 30.0]
    det = LevelScaleDetector(warmup=10, cal=0.0)
    points = [det.update(i * MIN, v) for i, v in enumerate(x)]
    last = points[-1]
    assert last.source == "level" and last.run_ms == 2 * MIN and x[-1] > last.upper
    assert np.isnan(points[0].score) and points[0].source == "none"  # warming up: not scored, no model fired


def test_pipeline_factories_pick_the_noise_model_from_the_metric_kind() -> None:
    from tunewatch.detect.robust import RobustLevelDetector
    from tunewatch.detect.stage import default_detector, ensemble_detector, robust_detector
    from tunewatch.process.catalogue import METRICS

    ratio = next(s for s in METRICS.values() if s.kind == "ratio")
    det = ensemble_detector(ratio)
    assert isinstance(det, EnsembleDetector) and det.params.noise == "binomial"
    assert det.params.damp == 1.0 and det.params.cal == 0.0  # raw |z| for the per-minute rules
    assert isinstance(default_detector(ratio), RobustLevelDetector)  # measured best on the simulator's days
    assert isinstance(robust_detector(ratio), RobustLevelDetector)
    assert robust_detector(ratio).noise == "binomial"


def test_frozen_scale_keeps_the_band_through_an_outage() -> None:
    rng = np.random.default_rng(5)
    x = rng.poisson(200, 200).astype(float)
    x[120:140] = 0.0  # an outage
    x[150] = 320.0  # a surge soon after
    t = np.arange(200) * MIN
    frozen = LevelScaleDetector(noise="poisson", warmup=15, cal=0.0, damp=1.0, mad_cap=3, freeze_scale=True).chunk(t, x)
    learning = LevelScaleDetector(noise="poisson", warmup=15, cal=0.0, mad_cap=3).chunk(t, x)
    assert frozen.upper[150] - frozen.lower[150] < learning.upper[150] - learning.lower[150]
    assert frozen.score[150] > 0.5


def test_weekly_profile_learns_what_the_daily_one_cannot() -> None:
    hour = 60 * MIN
    t = np.arange(5 * 7 * 24) * hour  # five weeks, hourly; the epoch (day 0) was a Thursday
    rng = np.random.default_rng(6)
    weekend = ((t // DAY_MS + 3) % 7) >= 5
    x = 100 + 40 * np.sin(t / DAY_MS * 2 * np.pi) - 60 * weekend + rng.normal(0, 2, t.size)
    daily = SeasonalDetector(bins=24, warmup=20).chunk(t, x)
    weekly = SeasonalDetector(bins=24, weekly_bins=168, warmup=20).chunk(t, x)
    last_week = slice(4 * 168, 5 * 168)
    err_daily = np.mean(np.abs(daily.expected[last_week] - x[last_week]))
    err_weekly = np.mean(np.abs(weekly.expected[last_week] - x[last_week]))
    assert err_weekly < 6 and err_daily > 3 * err_weekly


def test_tail_calibration_learns_that_recurring_spikes_are_normal() -> None:
    rng = np.random.default_rng(7)
    x = 10 + rng.normal(0, 1, 3000)
    x[np.arange(300, 2900, 100)] += 25  # the same spike every 100 points
    x[2950] -= 25  # a dip of the same size, never seen before
    settings_ = {"warmup": 30, "tail_bins": 24, "tail_decay": 0.998, "spread_frac": 0.2, "damp": 1.0}
    d = LevelScaleDetector(**settings_).chunk(np.arange(3000) * MIN, x)
    first, late = d.score[300], d.score[2800]
    assert first > 0.5 and late < first / 2  # the 26th spike says much less than the first
    assert d.score[2950] > 2 * late  # a deviation unlike the series' own history still stands out
    calm = np.delete(d.score[400:2950], np.r_[np.arange(0, 2550, 100), np.arange(1, 2550, 100)])
    assert np.nanmax(calm) < late + 0.3


def test_a_long_anomaly_does_not_teach_the_tails_that_it_is_normal() -> None:
    rng = np.random.default_rng(11)
    x = 10 + rng.normal(0, 1, 4000)
    burst = 12 * (-1.0) ** np.arange(100)  # a 100-point incident the level cannot absorb ...
    x[1500:1600] += burst
    x[2500:2600] += burst  # ... and the same again, a thousand points later
    t = np.arange(4000) * MIN
    settings_ = {"warmup": 30, "tail_bins": 24, "tail_decay": 0.995, "tail_decay_long": 0.9998, "damp": 1.0}
    learnt = LevelScaleDetector(**settings_).chunk(t, x).score
    bounded = LevelScaleDetector(**settings_, run_learn=2.0).chunk(t, x).score
    np.testing.assert_array_equal(bounded[:1502], learnt[:1502])  # the same until a run passes two points
    # every point of the first incident taught the tails: the second one says less than the first ...
    assert learnt[2500:2600].max() < 0.9 * learnt[1500:1600].max()
    # ... and less than when only its first two points teach fully and the rest about the log of their number
    assert bounded[2500:2600].max() > learnt[2500:2600].max() + 0.02
    # a spike that recurs is still learnt as normal (one-point runs teach fully)
    y = 10 + rng.normal(0, 1, 3000)
    y[np.arange(300, 2900, 100)] += 25
    recur = LevelScaleDetector(**settings_, run_learn=2.0).chunk(np.arange(3000) * MIN, y).score
    assert recur[2800] < recur[300] / 2


def test_an_episode_ends_after_a_quiet_gap() -> None:
    rng = np.random.default_rng(5)
    x = 10 + rng.normal(0, 1, 2000)
    x[1000] += 20
    x[1400] += 20  # as large, after 400 quiet points
    t = np.arange(2000) * MIN
    settings_ = {"warmup": 30, "tail_bins": 24, "damp": 0.2, "decay": 0.9995}
    damped = LevelScaleDetector(**settings_).chunk(t, x).score
    gapped = LevelScaleDetector(**settings_, episode_gap=300.0).chunk(t, x).score
    undamped = LevelScaleDetector(**{**settings_, "damp": 1.0}).chunk(t, x).score
    assert gapped[1000] == damped[1000]
    # after 300 quiet intervals the second spike opens a new episode: scored in full, as if nothing were damped
    assert gapped[1400] == undamped[1400]
    assert damped[1400] < 0.5 * gapped[1400]  # without the gap it is still the first spike's episode: damped


def test_tail_surprise_matches_an_explicitly_decayed_histogram_across_rescaling() -> None:
    """The O(1) cumulative tails with an inflation factor equal the textbook decayed histogram, also after the
    counts are rescaled (decay 0.9 reaches the rescaling threshold after about 2,200 points)."""
    import math

    rng = np.random.default_rng(8)
    n, width, bins, prior_n, heavy, decay = 3000, 0.5, 12, 30.0, 0.1, 0.9
    x = 10 + rng.standard_t(3, n)
    settings_ = {"warmup": 20, "tail_bins": bins, "tail_width": width, "tail_decay": decay, "tail_prior": prior_n,
                 "tail_heavy": heavy, "damp": 1.0, "episode_weight": 0.0, "score_k": 1.0}  # fmt: skip
    det = LevelScaleDetector(**settings_)
    t = np.arange(n) * MIN
    out = np.empty((n, k.OUT_WIDTH))
    det._grow(1)
    k.run_chunk(det._states[0], det._p, t.astype(float), x, np.ones(n), out)
    score, z = out[:, k.O_SCORE], out[:, k.O_Z]
    hist = np.zeros((2, bins))  # explicit decayed counts, up and down
    grid = np.arange(k.PRIOR_SIZE) * k.PRIOR_STEP

    def exact_prior(e: np.ndarray) -> np.ndarray:
        erfc = np.array([math.erfc(v / math.sqrt(2)) for v in e])
        return (1 - heavy) * erfc + heavy * (2 / math.pi) * np.arctan2(1.0, e)

    for i in range(20, n):
        e = abs(z[i])
        u, side = math.log1p(e), 0 if z[i] >= 0 else 1
        j = min(int(u / width), bins - 1)
        inside = 1.0 - (u / width - j) if j < bins - 1 else 1.0
        tail = inside * hist[side, j] + hist[side, j + 1 :].sum()
        prior = float(np.interp(u, grid, exact_prior(np.expm1(grid))))  # the kernel tabulates the prior
        expected = -math.log10((tail + 0.5 * prior_n * prior) / (hist.sum() + prior_n))
        got = math.sqrt(score[i] / (1.0 - score[i]))  # score = e² / (e² + 1)
        assert got == pytest.approx(expected, rel=1e-6, abs=1e-9), i
        hist *= decay
        hist[side, j] += 1.0


@pytest.mark.parametrize("heavy", [0.0, 0.01, 0.1, 0.5])
def test_tabulated_noise_prior_is_close_to_the_exact_one(heavy: float) -> None:
    """The kernel reads the calibration's noise prior from a table over log(1 + e); against the exact normal +
    Cauchy tail it is within 0.3 % (0.01 decades for pure Gaussian noise down to a tail of 1e-6), and beyond
    the table it is exact."""
    import math

    p = np.zeros(k.N_PARAMS + k.PRIOR_SIZE)
    p[k.P_TAIL_HEAVY] = heavy
    p[k.P_PRIOR_TABLE :] = k.prior_table(heavy)
    for e in np.r_[np.linspace(0.0, 60.0, 6001), [100.0, 1e4]]:
        exact = (1 - heavy) * math.erfc(e / math.sqrt(2)) + heavy * (2 / math.pi) * math.atan2(1.0, e)
        got = k._prior(p, e, math.log1p(e))
        if heavy > 0.0:
            assert got == pytest.approx(exact, rel=3e-3), e
        elif exact > 1e-6:
            assert abs(math.log10(got) - math.log10(exact)) < 0.011, e
        if e > 60.0:
            assert got == pytest.approx(exact, rel=1e-12), e


def test_trend_model_follows_a_growing_series_and_still_sees_a_dip() -> None:
    from tunewatch.detect.detectors import EnsembleDetector

    rng = np.random.default_rng(8)
    n = 3000
    t = np.arange(n, dtype=np.int64) * 300_000
    x = 100.0 + 0.2 * np.arange(n) + rng.normal(0.0, 1.0, n)
    x[2500] -= 12.0
    flat = EnsembleDetector(bins=0, use_cusum=0.0).chunk(t, x)
    trend = EnsembleDetector(bins=0, use_cusum=0.0, trend=0.05).chunk(t, x)
    lag_flat = np.nanmedian(x[1000:2400] - flat.expected[1000:2400])
    lag_trend = np.nanmedian(x[1000:2400] - trend.expected[1000:2400])
    assert abs(lag_trend) < abs(lag_flat) / 3  # the plain level lags a trend; the (damped) trend model far less
    assert trend.score[2500] > 0.5 and np.nanmax(trend.score[1000:2400]) < trend.score[2500]


def test_count_noise_is_found_from_the_data_and_only_for_counts() -> None:
    from tunewatch.detect.detectors import LevelScaleDetector
    from tunewatch.detect.kernel import INTEGRAL

    rng = np.random.default_rng(4)
    n = 2000
    t = np.arange(n, dtype=np.int64) * MIN
    x = rng.poisson(0.5, n).astype(float)
    x[1500] = 4.0  # common enough for a Poisson(0.5) count over 2,000 points
    plain = LevelScaleDetector(cal=0.0, damp=1.0)
    counted = LevelScaleDetector(cal=0.0, damp=1.0, auto_count=True)
    s_plain = plain.chunk(t, x).score[1500]
    s_counted = counted.chunk(t, x).score[1500]
    assert s_counted < s_plain  # a count's tail, not a scale learnt from mostly zeros
    assert counted.state_dict()["states"][0][INTEGRAL] == 1.0
    fractional = LevelScaleDetector(cal=0.0, damp=1.0, auto_count=True)
    fractional.chunk(t, x + 0.5)
    assert fractional.state_dict()["states"][0][INTEGRAL] == 0.0


def test_a_proportion_of_rare_events_is_found_from_the_data_and_judged_as_one() -> None:
    from tunewatch.detect.defaults import LABEL_FREE_THRESHOLD, SERIES_DEFAULT

    # a crash rate: crashes over a number of sessions that follows the day (a dozen at night), most minutes 0
    rng = np.random.default_rng(7)
    n = 6000
    t = np.arange(n, dtype=np.int64) * MIN
    sessions = rng.poisson(60.0 * (1.0 + 0.8 * np.sin(2 * np.pi * t / DAY_MS)) + 1.0)
    p = np.full(n, 0.01)
    p[5000:5030] = 0.08  # an incident: eight times the crash rate for half an hour
    x = rng.binomial(sessions, p) / sessions
    plain = EnsembleDetector(**{**SERIES_DEFAULT, "auto_ratio": False})
    ratio = EnsembleDetector(**SERIES_DEFAULT)
    s_plain = np.nan_to_num(plain.chunk(t, x).score)
    s_ratio = np.nan_to_num(ratio.chunk(t, x).score)
    assert ratio.state_dict()["states"][0][k.UNIT] == 2.0  # all in [0, 1], some exactly 0
    quiet = slice(1000, 5000)  # no incident: one more crash in a quiet hour says less as a proportion
    false_plain = int(np.sum(s_plain[quiet] >= LABEL_FREE_THRESHOLD))
    false_ratio = int(np.sum(s_ratio[quiet] >= LABEL_FREE_THRESHOLD))
    assert false_ratio < false_plain and false_plain >= 3
    # as plain fractions the incident scores no higher than the noise's largest; as a proportion it stands out
    assert s_plain[5000:5030].max() < s_plain[quiet].max() + 0.01
    assert s_ratio[5000:5030].max() > max(LABEL_FREE_THRESHOLD, s_ratio[quiet].max() + 0.03)
    # a fraction series that is never 0, or one value out of [0, 1], is no proportion: scored as without the setting
    for y in (0.2 + 0.01 * rng.random(n), np.r_[1.5, x[1:]]):
        np.testing.assert_array_equal(
            EnsembleDetector(auto_ratio=True).chunk(t, y).score, EnsembleDetector().chunk(t, y).score
        )


def test_a_period_that_is_not_a_day_is_found_from_the_data_and_used() -> None:
    from tunewatch.detect import kernel as k
    from tunewatch.detect.detectors import EnsembleDetector

    rng = np.random.default_rng(12)
    n = 3000
    t = np.arange(n, dtype=np.int64) * MIN
    x = 100.0 + 20.0 * np.sin(2 * np.pi * t / 3_600_000) + rng.normal(0.0, 1.0, n)  # an hourly cycle
    x[2600] += 12.0  # small beside the cycle's swing, large beside the noise
    settings_ = {"bins": 288, "use_cusum": 0.0}
    plain = EnsembleDetector(**settings_)
    found = EnsembleDetector(**settings_, period_ring=128, period_block=4)
    s_plain = plain.chunk(t, x)
    s_found = found.chunk(t, x)
    row = found.state_dict()["states"][0]
    assert row[k.FP_PERIOD] == pytest.approx(3_600_000, rel=0.05) and row[k.FP_ACF] > 0.8
    err_plain = np.nanmedian(np.abs(x[2000:2500] - s_plain.expected[2000:2500]))
    err_found = np.nanmedian(np.abs(x[2000:2500] - s_found.expected[2000:2500]))
    assert err_found < 2.0 < err_plain  # the found profile forecasts the cycle; within a day nothing else can
    assert s_found.score[2600] > np.nanmax(s_found.score[2000:2500])


def test_no_period_is_found_in_noise_or_a_trend() -> None:
    from tunewatch.detect import kernel as k
    from tunewatch.detect.detectors import EnsembleDetector

    rng = np.random.default_rng(13)
    t = np.arange(3000, dtype=np.int64) * MIN
    for x in (rng.normal(0.0, 1.0, 3000), 0.05 * np.arange(3000) + rng.normal(0.0, 1.0, 3000)):
        det = EnsembleDetector(period_ring=128, period_block=4)
        det.chunk(t, x)
        assert det.state_dict()["states"][0][k.FP_BINS] == 0.0


@pytest.mark.parametrize(
    ("shape", "step_ms", "model"),
    [
        ("flat", 5 * MIN, "level"),
        ("trend", 5 * MIN, "trend"),
        ("daily", 5 * MIN, "seasonal"),
        ("hourly", MIN, "found_period"),
    ],
)
def test_a_detection_of_the_series_default_names_the_model_it_was_judged_against(
    shape: str, step_ms: int, model: str
) -> None:
    """With the surprise tails the evidence is in decades; the model used to be named only above ``band_z`` (4)
    of them, so nearly every detection said "none" (695 of NAB's 707 at the label-free threshold)."""
    rng = np.random.default_rng(5)
    n = 3000
    t = np.arange(n) * step_ms
    i = np.arange(n)
    base = {
        "flat": np.zeros(n),
        "trend": 0.05 * i,
        "daily": 30 * np.sin(2 * np.pi * t / DAY_MS),
        "hourly": 10 * np.sin(2 * np.pi * i / 60),
    }[shape]
    x = 100 + base + rng.normal(0, 1, n)
    x[2500] += 8
    d = EnsembleDetector(**SERIES_DEFAULT).chunk(t, x)
    assert d.source is not None
    assert d.score[2500] >= LABEL_FREE_THRESHOLD  # a detection at the threshold tunewatch runs
    assert k.SOURCE_NAMES[int(d.source[2500])] == model
    scored = ~np.isnan(d.score)
    assert (d.source[scored] != k.SOURCE_NONE).all() and (d.source[~scored] == k.SOURCE_NONE).all()


def test_a_version_6_checkpoint_counts_episodes_as_before() -> None:
    """Version 6 counted an episode when the evidence passed ``band_z``'s value; version 7 names that threshold
    ``episode_evidence`` and adopts a version-6 checkpoint with it at the checkpoint's ``band_z``."""
    t, x, _w = _series(4, 800, 0.0, False)
    settings_ = {**DEFAULT_V8, "band_z": 3.0, "episode_evidence": 3.0}
    whole = EnsembleDetector(**settings_).chunk(t, x)
    first = EnsembleDetector(**settings_)
    first.chunk(t[:400], x[:400])
    state = first.state_dict()
    v6 = _older(state, 6)
    v6["params"] = {n: v for n, v in v6["params"].items() if n != "episode_evidence"}
    adopted = EnsembleDetector(**settings_)
    adopted.load_state_dict(v6)
    np.testing.assert_array_equal(adopted.chunk(t[400:], x[400:]).score, whole.score[400:])
    with pytest.raises(ValueError, match="params differ"):
        EnsembleDetector(**{**settings_, "episode_evidence": 4.0}).load_state_dict(v6)
    # the threshold acts: counting more episodes divides later evidence more
    fewer = EnsembleDetector(**{**settings_, "episode_evidence": 1.5}).chunk(t, x)
    assert np.nansum(fewer.score) < np.nansum(whole.score)


def test_the_shape_channel_sees_a_change_of_spike_density_that_no_point_is_extreme_in() -> None:
    """A spike every 25 points is learnt as normal; when they come every 5 no point is larger than before, so the
    point channel stays below the label-free threshold, while the residuals' shape is a new category (the one
    NAB window the opt-in channel adds: ``art_increase_spike_density``)."""
    n = 3000
    t = np.arange(n) * MIN
    x = np.full(n, 10.0)
    x[np.arange(100, 2000, 25)] += 20
    x[np.arange(2000, n, 5)] += 20
    off = EnsembleDetector(**SERIES_DEFAULT).chunk(t, x)
    on = EnsembleDetector(**{**SERIES_DEFAULT, "shape_blocks": 8}).chunk(t, x)
    assert on.source is not None
    np.testing.assert_array_equal(on.score[500:2000], off.score[500:2000])  # once the spikes are learnt: no change
    assert np.nanmax(off.score[2000:2100]) < LABEL_FREE_THRESHOLD
    first = 2000 + int(np.argmax(on.score[2000:2100] >= LABEL_FREE_THRESHOLD))
    assert on.score[first] >= LABEL_FREE_THRESHOLD and first < 2020
    assert k.SOURCE_NAMES[int(on.source[first])] == "shape"


def test_the_shape_channel_is_off_by_default_and_a_version_7_checkpoint_is_adopted() -> None:
    """Version 8 added the shape channel's settings; its block sits at the end of the row, so a version-7
    checkpoint (no shape settings) keeps its rows and resumes exactly, and the default's state is unchanged."""
    t, x, _w = _series(6, 800, 0.05, False)
    base = EnsembleDetector(**SERIES_DEFAULT)
    assert base.params.shape_blocks == 0
    with_shape = EnsembleDetector(**{**SERIES_DEFAULT, "shape_blocks": 8})
    assert with_shape.bytes_per_series == base.bytes_per_series + shape_width(8, 2, 32) * 8
    assert shape_width(8, 2, 32) == 582  # 6 + 16 scratch features + 16 ring + 32 counts + 32 x 16 prototypes
    whole = EnsembleDetector(**DEFAULT_V8).chunk(t, x)
    first = EnsembleDetector(**DEFAULT_V8)
    first.chunk(t[:400], x[:400])
    state = first.state_dict()
    v7 = _older(state, 7)
    v7["params"] = {n: v for n, v in v7["params"].items() if not n.startswith("shape_")}
    adopted = EnsembleDetector(**DEFAULT_V8)
    adopted.load_state_dict(v7)
    np.testing.assert_array_equal(adopted.chunk(t[400:], x[400:]).score, whole.score[400:])
    with pytest.raises(ValueError, match="params differ"):
        EnsembleDetector(**{**DEFAULT_V8, "shape_blocks": 8}).load_state_dict(v7)


def _stuck(seed: int, n: int, at: int, length: int, counts: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A daily-seasonal minute series (continuous, or a count around 200) and its twin stuck at one value for
    ``length`` points from ``at`` (an exporter repeating its last value)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) * MIN
    level = 200 + 60 * np.sin(t / DAY_MS * 2 * np.pi)
    x = rng.poisson(level).astype(float) if counts else level + rng.normal(0, 5, n)
    stuck = x.copy()
    stuck[at : at + length] = x[at - 1]
    return t, x, stuck


@pytest.mark.parametrize("counts", [False, True])
def test_a_stuck_series_is_flagged_by_the_flatline_channel_and_its_clean_twin_is_not(counts: bool) -> None:
    """A series that repeats one value exactly scores above the label-free threshold within a few points, named
    ``flatline``, once (the run's evidence is capped, so its later points are damped as one episode); the same
    series without the stuck stretch (whose counts repeat now and then) gets no flatline detection, and without the
    channel the stretch is missed."""
    t, x, stuck = _stuck(7, 4000, 3000, 120, counts)
    on = EnsembleDetector(**SERIES_DEFAULT).chunk(t, stuck)
    seg = np.nan_to_num(on.score[3000:3120])
    first = int(np.argmax(seg >= LABEL_FREE_THRESHOLD))
    assert seg[first] >= LABEL_FREE_THRESHOLD and first < 5
    assert k.SOURCE_NAMES[int(on.source[3000 + first])] == "flatline"
    assert int((seg >= LABEL_FREE_THRESHOLD).sum()) <= 3  # one episode, not 120 detections
    clean = EnsembleDetector(**SERIES_DEFAULT).chunk(t, x)
    assert not np.any((clean.source == k.SOURCE_FLATLINE) & (np.nan_to_num(clean.score) >= LABEL_FREE_THRESHOLD))
    off = EnsembleDetector(**DEFAULT_V8).chunk(t, stuck)
    assert np.nanmax(off.score[3000:3120]) < LABEL_FREE_THRESHOLD


def test_repeats_a_series_makes_as_a_matter_of_course_are_not_a_flatline() -> None:
    """Sparse counts repeat their 1s and 2s all the time: a run is judged against the longest the series showed
    lately, so over 5,000 points of Poisson(1) noise the channel never passes the label-free threshold."""
    rng = np.random.default_rng(3)
    t = np.arange(5000) * MIN
    x = rng.poisson(1.0, 5000).astype(float)
    d = EnsembleDetector(**SERIES_DEFAULT).chunk(t, x)
    flat = (d.source == k.SOURCE_FLATLINE) & (np.nan_to_num(d.score) >= LABEL_FREE_THRESHOLD)
    assert not flat.any()


def test_a_version_8_checkpoint_is_adopted_with_the_flatline_channel_off_and_refused_with_it_on() -> None:
    """Version 9 added five header columns and two settings; a version-8 checkpoint gets them (off), resumes
    exactly, and is refused by a detector with the channel on (its settings differ)."""
    t, _x, stuck = _stuck(8, 1200, 900, 60, False)
    whole = EnsembleDetector(**DEFAULT_V8).chunk(t, stuck)
    first = EnsembleDetector(**DEFAULT_V8)
    first.chunk(t[:600], stuck[:600])
    v8 = _older(first.state_dict(), 8)
    assert v8["states"].shape[1] == first.width - 5
    adopted = EnsembleDetector(**DEFAULT_V8)
    adopted.load_state_dict(v8)
    np.testing.assert_array_equal(adopted.chunk(t[600:], stuck[600:]).score, whole.score[600:])
    with pytest.raises(ValueError, match="params differ"):
        EnsembleDetector(**SERIES_DEFAULT).load_state_dict(_older(first.state_dict(), 8))
