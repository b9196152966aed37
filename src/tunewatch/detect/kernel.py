"""The compiled point kernel shared by the level, seasonal, change-point and ensemble detectors.

One function, :func:`point`, scores and learns one point of one series from a small float64 state row; two
loops call it — :func:`run_many` over the series of one time step, :func:`run_chunk` over the points of one
series — so the vectorised and streaming forms are the same arithmetic and give identical results.
Compiled with Numba (no Python per point: 3-13 million points/s on one core, see bench/detectors.py).

Per series the kernel keeps:

* a **robust level and scale**: EWMA level with a Huber-clipped update, and an exponentially weighted mean
  absolute deviation (×1.2533 ≈ σ for Gaussian noise), plus the sampling noise the point's weight implies —
  Poisson for counts, binomial for ratios weighted by their denominator, a relative floor otherwise;
* optionally a **seasonal profile**: additive Holt-Winters offsets over slots of a period (a day or a week in
  the market's local time, fixed UTC offset; one slot per typical interval, at most ``bins``), linearly
  interpolated, with its own slow level and scale; optionally a second, **weekly** profile (coarser slots) with
  its own level and scale; the forecast comes from whichever of the plain, daily and weekly models currently
  has the smallest error scale;
* optionally a **trend** model: a damped Holt level and slope with its own error scale; it forecasts instead of
  the plain level when its one-step errors are smaller (a growing or shrinking series), and the long-run spread
  that floors the scale is measured around the trend, so a trend does not widen the band;
* optionally (``P_AUTO_COUNT``) **count noise found from the data**: a series whose values have all been
  non-negative integers gets Poisson sampling noise at least, so a count of 3 against an expected 0.4 is judged
  by a count's tail, not by a scale learnt from mostly zeros;
* optionally (``P_AUTO_RATIO``) **proportions found from the data**: a series whose values have all been in
  [0, 1], some of them exactly 0 and some fractional (a crash or error rate: rare events over a number of
  sessions), is judged like a binomial proportion of as many trials as its forecast and error scale imply —
  its deviation is the smaller of the Gaussian one and the arcsine (Anscombe) one, so one more crash in a quiet
  hour is not read as many deviations, while a rate several times its normal is;
* optionally (``P_RING`` > 0) a **period found from the data**: the means of the last ``P_RING`` blocks of
  ``P_RING_BLOCK`` points are kept in a ring (blocks: fewer memory writes per point, longer periods seen).
  After ``P_RING`` and ``2 × P_RING`` blocks, then every ``8 × P_RING``, the autocorrelation of the linearly
  detrended ring is searched for its first clear peak at lags 3 … ``P_RING / 2`` blocks (above 0.4 and four
  standard errors, as some 60 lags are searched, after a trough). A period found that the daily or weekly
  profile does not already learn gets a third profile (in time, one slot per block), which forecasts when its
  errors are the smallest; when the peak goes or moves, the profile is reset. It learns cycles of minutes to
  hours (cron jobs, hourly batches) in two cycles, where a daily profile needs days;
* a two-sided **CUSUM** of clipped standardised deviations from a slow reference level: shifts the fast level
  would absorb still accumulate, and an alarm re-bases the model on a fast EWMA so it follows the new regime
  instead of alarming for hours;
* a **surprise calibration**, either by the long-run mean and variance of the compressed evidence
  ``log(1 + e)`` (with a prior worth 30 points of Gaussian noise), where the evidence is the larger of |z| and
  the CUSUM's, or, with ``P_TAIL_BINS``, of |z| alone by the empirical tail of a decayed histogram per side:
  the evidence becomes −log10 of how often the series reached it, so a series that spikes every day is not
  surprising when it spikes again, while a deviation it never showed is as rare as heavy-tailed noise makes it.
  With the tails the CUSUM only re-bases: its own tail-calibrated channel never passed 1.96 decades (a score
  of 0.193) on NAB's 58 files or the synthetic suite, and was removed in state version 6 (docs/benchmarks.md);
* optionally (``P_SHAPE_BLOCKS`` > 0, off in the defaults) a **shape channel** (:mod:`tunewatch.detect.shape`):
  whether the recent window of standardised residuals is a new category among the series' prototypes, as rare
  as the series' own rate of new categories makes it; shown instead of the point's evidence when larger;
* optionally (``P_QUIET_DECAY`` > 0) a **flatline channel**: a run of exact repeats of a non-zero value (a stuck
  gauge, an exporter repeating its last value) adds, per repeat, −log10 of the series' own decayed rate of exact
  repeats (Laplace's rule; for counts, at least the forecast's probability of that very count), and says what it
  has beyond the longest run the series showed lately, capped at ``P_QUIET_CAP`` decades so a long run is one
  episode; shown instead of the point's evidence when larger (zeros are left to the point channel: a run of
  zeros is a drop);
* a **peak memory** so that a run of high scores is reported once (later points of the same episode are damped
  unless they are worse), a decaying count of recent episodes that divides the evidence of the next one, and
  the length of the current anomalous run.

Irregular timestamps: the typical interval is learned; after a gap the gains are raised as if the missed
points had been seen. Missing points (NaN value or weight ≤ 0) are neither scored nor learned.
"""

from __future__ import annotations

import math
from typing import Final

import numba
import numpy as np

from tunewatch.detect.shape import shape_evidence

# ---- state row layout -------------------------------------------------------------------------------------
(
    N,
    LEVEL,
    MAD,
    LAST_T,
    DT,
    CPOS,
    CNEG,
    PEAK,
    RUN,
    RUN_T,
    SLEVEL,
    SMAD,
    FAST,
    FIRST_T,
    WMEAN,
    SMEAN,
    SPREAD,
    UMEAN,
    UVAR,
    USHORT,
    SBINS,
    CREF,
    EPIS,
    WLEVEL,
    WMAD,
    WBINS,
    TINFL,
    TINFL_LONG,
    TLEVEL,
    SLOPE,
    TMAD,
    INTEGRAL,
    FP_PERIOD,
    FP_INV,
    FP_BINS,
    FP_LEVEL,
    FP_MAD,
    FP_FIRST,
    FP_ACF,
    RPOS,
    RACC,
    RCNT,
    QUIET,
    UNIT,
    LASTX,
    QREP,
    QNUM,
    QDEN,
    QMAX,
) = range(49)
HEADER: Final = 49  # then the surprise tails (next to the header: touched every point), the daily profile, the weekly

# ---- parameter vector layout ------------------------------------------------------------------------------
(
    P_ALPHA,
    P_SCALE_ALPHA,
    P_CLIP,
    P_WARMUP,
    P_CUSUM_K,
    P_CUSUM_H,
    P_CUSUM_Z,
    P_DECAY,
    P_DAMP,
    P_NOISE,
    P_REL_FLOOR,
    P_PERIOD_MS,
    P_BINS,
    P_GAMMA,
    P_TZ_MS,
    P_BAND_Z,
    P_SCORE_K,
    P_FAST,
    P_USE_LEVEL,
    P_USE_CUSUM,
    P_MAD_CAP,
    P_SPREAD_FRAC,
    P_SPREAD_ALPHA,
    P_CAL_ALPHA,
    P_CAL_SHORT,
    P_CAL,
    P_CUSUM_REF,
    P_SLEVEL_GAIN,
    P_EPIS_DECAY,
    P_EPIS_WEIGHT,
    P_FREEZE,
    P_WPERIOD_MS,
    P_WBINS,
    P_TAIL_BINS,
    P_TAIL_WIDTH,
    P_TAIL_DECAY,
    P_TAIL_PRIOR,
    P_TAIL_HEAVY,
    P_TAIL_DECAY_LONG,
    P_TAIL_GROW,
    P_TAIL_GROW_LONG,
    P_TAIL_INV_WIDTH,
    P_INV_PERIOD,
    P_INV_WPERIOD,
    P_TREND,
    P_TREND_DAMP,
    P_AUTO_COUNT,
    P_RING,
    P_RING_BLOCK,
    P_RUN_LEARN,
    P_EPISODE_GAP,
    P_AUTO_RATIO,
    P_EPISODE_EVIDENCE,
    P_SHAPE_BLOCKS,
    P_SHAPE_BLOCK,
    P_SHAPE_PROTOS,
    P_SHAPE_VIGILANCE,
    P_SHAPE_WEIGHT,
    P_SHAPE_DECAY,
    P_QUIET_DECAY,
    P_QUIET_CAP,
) = range(61)
N_PARAMS: Final = 61
#: After the parameters, the noise prior of the surprise calibration tabulated over ``u = log(1 + e)``
#: (:func:`prior_table`): ``PRIOR_SIZE`` values ``PRIOR_STEP`` apart, read by linear interpolation.
P_PRIOR_TABLE: Final = N_PARAMS
PRIOR_STEP: Final = 1.0 / 64.0
PRIOR_SIZE: Final = 257  # u up to 4 (e ≈ 54, where the Gaussian part is 0); beyond, the exact formula

# ---- output row layout ------------------------------------------------------------------------------------
O_SCORE, O_EXPECTED, O_LOWER, O_UPPER, O_SOURCE, O_RUN_MS, O_Z = range(7)
OUT_WIDTH: Final = 7

NOISE_RELATIVE, NOISE_POISSON, NOISE_BINOMIAL = 0.0, 1.0, 2.0
#: Values of ``O_SOURCE``: the model a scored point was judged against — the one whose forecast is ``O_EXPECTED``
#: (the plain level, the first (daily) seasonal profile, the weekly one, the found period's, the trend), or the
#: CUSUM when its evidence is outside the band and larger than the point's (only without surprise tails); "none"
#: only for points that are not scored (missing, weightless, warming up). Until 2026-12-07 a point was named only
#: when its evidence passed ``P_BAND_Z``, which with the surprise tails (evidence in decades) almost never happened.
SOURCE_NONE, SOURCE_LEVEL, SOURCE_SEASONAL, SOURCE_CHANGE, SOURCE_WEEKLY, SOURCE_PERIOD, SOURCE_TREND = (
    0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0,
)  # fmt: skip
#: ... or the shape channel (:mod:`tunewatch.detect.shape`, opt-in), when its evidence is shown instead
SOURCE_SHAPE: Final = 7.0
#: ... or the flatline channel (``P_QUIET_DECAY`` > 0), when a run of exactly repeated values says more
SOURCE_FLATLINE: Final = 8.0
SOURCE_NAMES: Final = {
    0: "none", 1: "level", 2: "seasonal", 3: "change_point", 4: "weekly", 5: "found_period", 6: "trend",
    7: "shape", 8: "flatline",
}  # fmt: skip

_MAD_TO_SD: Final = 1.2533
# prior of the surprise calibration: log(1 + |Z|) of standard normal noise, worth _U_PRIOR_N points
_U_PRIOR_MEAN: Final = 0.53
_U_PRIOR_VAR: Final = 0.13
_U_PRIOR_N: Final = 30.0


@numba.njit(cache=True, inline="always", error_model="numpy")
def _sampling_var(expected: float, w: float, noise: float, rel_floor: float) -> float:
    base = (rel_floor * abs(expected)) ** 2
    if noise == NOISE_POISSON:
        return max(abs(expected), 1.0) + base
    if noise == NOISE_BINOMIAL:
        q = min(max(expected, 0.002), 0.998)
        return q * (1.0 - q) / max(w, 1.0) + base
    return base + 1e-12


@numba.njit(cache=True, inline="always", error_model="numpy")
def _count_z(z: float, x: float, fc: float, w: float, noise: float) -> float:
    """``z`` shrunk to the variance-stabilised deviation of a count where that is less extreme.

    The normal approximation over-reads small counts (2 failures in 15 attempts against an expected 0.09 is
    not "6 sigma"); Anscombe's square-root (Poisson) and arcsine (binomial) transforms are close to normal
    even for small counts, so the smaller of the two deviations, with the sign of ``z``, counts.
    """
    if noise == NOISE_POISSON:
        zv = 2.0 * (np.sqrt(max(x, 0.0) + 0.375) - np.sqrt(max(fc, 0.0) + 0.375))
    else:
        n = max(w, 1.0)
        k = min(max(x * n, 0.0), n)
        q = min(max(fc, 0.0), 1.0)
        zv = 2.0 * np.sqrt(n) * (np.arcsin(np.sqrt((k + 0.375) / (n + 0.75))) - np.arcsin(np.sqrt(q)))
    if z > 0.0:
        return min(z, max(zv, 0.0))
    return max(z, min(zv, 0.0))


@numba.njit(cache=True, inline="always", error_model="numpy")
def _gain(rate: float, gap: float) -> float:
    """Gain of an EWMA after ``gap`` intervals (``rate`` for one: no pow on the regular path)."""
    if gap == 1.0:
        return rate
    return 1.0 - (1.0 - rate) ** gap


@numba.njit(cache=True, inline="always", error_model="numpy")
def _slots(t: float, tz: float, inv_period: float, bins: int) -> tuple[int, int, float]:
    """The two profile slots around time ``t`` (local time ``t + tz``) and the weight of the second."""
    cycles = (t + tz) * inv_period
    ph = (cycles - np.floor(cycles)) * bins  # the phase without a (slow) floating-point modulo
    b0 = min(int(ph), bins - 1)  # ph < bins but for rounding; no integer modulo (a division) per point
    b1 = b0 + 1 if b0 + 1 < bins else 0
    return b0, b1, ph - b0


@numba.njit(cache=True, inline="always", error_model="numpy")
def _slot_count(period: float, dt: float, most: float) -> float:
    """Profile slots for a period: one per typical interval, at most ``most``; none under four."""
    per = period / max(dt, 1.0)
    return min(float(np.floor(per)), most) if per >= 4.0 and most > 0.0 else 0.0


@numba.njit(cache=True, inline="always", error_model="numpy")
def _profile_gain(gamma: float, span: float, age: float) -> float:
    """Gain of a profile slot: ``1 / (1 + visits)`` while the slot has been visited few times (``age / span``
    visits, ``span`` = interval × slots), then ``gamma``; no division once the profile is settled."""
    if gamma * age >= (1.0 - gamma) * span:
        return gamma
    return span / (span + age)


@numba.njit(cache=True, inline="always", error_model="numpy")
def _learn_profile(s: np.ndarray, base: int, b0: int, b1: int, frac: float, g: float, e: float) -> None:
    """Move the two slots around the current time towards the (clipped) residual ``e``."""
    s[base + b0] += g * (1.0 - frac) * e
    s[base + b1] += g * frac * e


@numba.njit(cache=True, inline="always", error_model="numpy")
def _tail_rate(
    s: np.ndarray, base: int, other: int, infl: float, nbins: int, j: int, within: float, prior_n: float, prior: float
) -> tuple[float, float]:
    """How often this series' evidence reached ``u = log1p(e)`` on this side, smoothed by a noise prior.

    ``s[base:base + nbins]`` holds this side's decayed count of past ``u`` *at or above* each slot of
    ``P_TAIL_WIDTH`` (the last slot open), so a tail is read in O(1): ``u`` is in slot ``j``, a fraction ``within``
    into it, and the tail is interpolated there. ``s[other]`` is the other
    side's total. Counts are stored multiplied by ``infl`` (see :func:`_learn_tail`). The rate is smoothed with
    ``prior_n`` points of noise whose two-sided tail at ``e`` is ``prior`` (:func:`_noise_tail`), so an evidence
    level never seen before is about as rare as such noise makes it, and one the series reaches every day is not.
    """
    tail = s[base + j]
    if j < nbins - 1:
        tail = s[base + j + 1] + (1.0 - within) * (tail - s[base + j + 1])
    # as a fraction (numerator, denominator: counts are ×infl), so the caller divides once
    return tail + 0.5 * prior_n * prior * infl, s[base] + s[other] + prior_n * infl


@numba.njit(cache=True, inline="always", error_model="numpy")
def _noise_tail(e: float, heavy: float) -> float:
    """P(|noise| ≥ e) for standard normal noise with a ``heavy`` fraction of Cauchy (which bounds what one point
    can say)."""
    gauss = math.erfc(e / math.sqrt(2.0)) if e < 40.0 else 0.0
    return (1.0 - heavy) * gauss + heavy * (2.0 / math.pi) * math.atan2(1.0, e)


def prior_table(heavy: float) -> np.ndarray:
    """The noise prior :func:`_noise_tail` at ``u = 0, PRIOR_STEP, ...``, for the parameter vector.

    Reading it costs a multiply and an interpolation instead of an ``erfc`` and an ``atan2`` per evidence
    channel (the calibration's largest cost); the interpolation error is well under 1 % of the prior.
    """
    u = np.arange(PRIOR_SIZE) * PRIOR_STEP
    return np.array([_noise_tail(math.expm1(v), heavy) for v in u])


@numba.njit(cache=True, inline="always", error_model="numpy")
def _prior(p: np.ndarray, e: float, u: float) -> float:
    """The noise prior at evidence ``e`` (``u = log1p(e)``): from the table in ``p``, or exactly beyond it."""
    pos = u * (1.0 / PRIOR_STEP)
    j = int(pos)
    if j >= PRIOR_SIZE - 1:
        return _noise_tail(e, p[P_TAIL_HEAVY])
    lo = p[P_PRIOR_TABLE + j]
    return lo + (pos - j) * (p[P_PRIOR_TABLE + j + 1] - lo)


@numba.njit(cache=True, inline="always", error_model="numpy")
def _learn_tail(s: np.ndarray, base: int, j: int, weight: float) -> None:
    """Count an evidence level in slot ``j`` with ``weight`` in the slots at or below its own.

    Decay without touching every slot: instead of multiplying all counts by the decay at each point, each new
    point weighs 1/decay times the previous one (the memory's inflation factor), which gives the same ratios.
    """
    for b in range(j + 1):
        s[base + b] += weight


@numba.njit(cache=True, inline="always", error_model="numpy")
def _next_inflation(s: np.ndarray, base: int, n: int, infl: float) -> float:
    """The inflation factor after a point; far from overflow, the ``n`` counts from ``base`` are rescaled."""
    if infl < 1e100:
        return infl
    for b in range(n):
        s[base + b] /= infl
    return 1.0


@numba.njit(cache=True, inline="always", error_model="numpy")
def tail_slots(p: np.ndarray) -> int:
    """State slots of the surprise tails: per memory (one or two), up and down."""
    memories = 2 if p[P_TAIL_DECAY_LONG] > 0.0 else 1
    return int(p[P_TAIL_BINS]) * 2 * memories


@numba.njit(cache=True, inline="always", error_model="numpy")
def _tail_surprise_rate(s: np.ndarray, p: np.ndarray, base: int, side: int, e: float, learn: float) -> float:
    """Rate of point evidence ``e`` on ``side``: the larger of the short and (if kept) long memory's, so a point
    must be rare in both to be surprising. Tails from ``base``: per memory, up then down, ``P_TAIL_BINS`` slots
    each. The point is learnt with weight ``learn`` (0: not at all)."""
    tb = int(p[P_TAIL_BINS])
    prior_n = p[P_TAIL_PRIOR]
    prior = 1.0  # no evidence: every past point was at least as large
    j = 0
    within = 0.0
    if e > 0.0:
        u = np.log1p(e)
        prior = _prior(p, e, u)
        pos = u * p[P_TAIL_INV_WIDTH]
        j = min(int(pos), tb - 1)
        within = pos - j
    short = base
    num, den = _tail_rate(s, short + side * tb, short + (1 - side) * tb, s[TINFL], tb, j, within, prior_n, prior)
    if p[P_TAIL_DECAY_LONG] > 0.0:
        lng = base + 2 * tb
        infl = s[TINFL_LONG]
        num_l, den_l = _tail_rate(s, lng + side * tb, lng + (1 - side) * tb, infl, tb, j, within, prior_n, prior)
        if num_l * den > num * den_l:  # the larger rate, without dividing twice
            num, den = num_l, den_l
        if learn > 0.0:
            _learn_tail(s, lng + side * tb, j, infl * p[P_TAIL_GROW_LONG] * learn)
    if learn > 0.0:
        _learn_tail(s, short + side * tb, j, s[TINFL] * p[P_TAIL_GROW] * learn)
    return num / den


@numba.njit(cache=True, error_model="numpy")
def _find_period(s: np.ndarray, rbase: int, size: int, pos: int) -> tuple[int, float]:
    """The lag of the first clear autocorrelation peak of the ring (oldest value at ``pos``), and its height;
    (0, 0) when there is none. The ring is detrended by a least-squares line first."""
    xs = np.empty(size)
    for i in range(size):
        xs[i] = s[rbase + (pos + i) % size]
    mid = 0.5 * (size - 1)
    sx = 0.0
    sxy = 0.0
    sxx = 0.0
    for i in range(size):
        sx += xs[i]
        sxy += (i - mid) * xs[i]
        sxx += (i - mid) * (i - mid)
    mean = sx / size
    slope = sxy / sxx
    var = 0.0
    for i in range(size):
        xs[i] -= mean + slope * (i - mid)
        var += xs[i] * xs[i]
    if var <= 1e-300:
        return 0, 0.0
    top = size // 2
    acf = np.empty(top + 2)  # lags 0 … top + 1 (the last only to tell whether ``top`` is a peak)
    for lag in range(1, top + 2):
        acc = 0.0
        for i in range(size - lag):
            acc += xs[i] * xs[i + lag]
        acf[lag] = acc / var * size / (size - lag)
    acf[0] = 1.0
    best = 0
    best_r = 0.0
    trough = 1.0
    for lag in range(1, top + 1):
        r = acf[lag]
        trough = min(trough, r)
        peak = r > acf[lag - 1] and r >= acf[lag + 1]
        clear = r > 0.4 and r > 4.0 / math.sqrt(size - lag) and r - trough > 0.3
        if lag >= 3 and peak and clear and (best == 0 or r > best_r + 0.1):  # the first clear peak, or a much higher
            best = lag
            best_r = r
    return best, best_r


@numba.njit(cache=True, inline="always", error_model="numpy")
def _no_score(out: np.ndarray, run_ms: float) -> None:
    """Output row of a point that is not scored (missing, weightless, or still warming up)."""
    out[O_SCORE] = np.nan
    out[O_EXPECTED] = np.nan
    out[O_LOWER] = np.nan
    out[O_UPPER] = np.nan
    out[O_SOURCE] = SOURCE_NONE
    out[O_RUN_MS] = run_ms
    out[O_Z] = np.nan


@numba.njit(cache=True, error_model="numpy", inline="always")
def point(s: np.ndarray, p: np.ndarray, t: float, x: float, w: float, out: np.ndarray) -> None:
    """Score point ``x`` (weight ``w``) at time ``t`` (ms) against state row ``s``, then learn from it."""
    if not (np.isfinite(x) and w > 0.0):
        _no_score(out, t - s[RUN_T] if s[RUN] > 0 else 0.0)
        return
    n = s[N]
    if n == 10.0:  # profile resolution, once the typical interval is known
        s[SBINS] = _slot_count(p[P_PERIOD_MS], s[DT], p[P_BINS])
        s[WBINS] = _slot_count(p[P_WPERIOD_MS], s[DT], p[P_WBINS])
    bins = int(s[SBINS])
    wbins = int(s[WBINS])
    dbase = HEADER + tail_slots(p)  # the daily profile
    if n == 0.0:
        s[LEVEL] = x
        s[SLEVEL] = x
        s[WLEVEL] = x
        s[WMAD] = 0.0
        s[TLEVEL] = x
        s[SLOPE] = 0.0
        s[TMAD] = 0.0
        s[INTEGRAL] = 1.0 if x >= 0.0 and x == np.floor(x) else 0.0
        s[UNIT] = (2.0 if x == 0.0 else 1.0) if 0.0 <= x <= 1.0 else 0.0
        s[FP_LEVEL] = x
        s[FP_MAD] = 0.0
        s[FP_BINS] = 0.0
        s[RPOS] = 0.0
        s[FAST] = x
        s[SMEAN] = x
        s[CREF] = x
        s[UMEAN] = _U_PRIOR_MEAN
        s[UVAR] = _U_PRIOR_VAR
        s[SPREAD] = 0.0
        s[MAD] = 0.0
        s[SMAD] = 0.0
        s[FIRST_T] = t
        s[LAST_T] = t
        s[WMEAN] = w
        s[TINFL] = 1.0
        s[TINFL_LONG] = 1.0
        s[LASTX] = x
        s[QREP] = 0.0
        s[QNUM] = 0.0
        s[QDEN] = 0.0
        s[QMAX] = 0.0
        s[N] = 1.0
        _no_score(out, 0.0)
        return
    # -- time: learned typical interval, gap factor for the gains
    dt = t - s[LAST_T]
    if s[DT] <= 0.0:
        s[DT] = max(dt, 1.0)
    gap = 1.0
    if dt > 0.0:
        gap = min(max(dt / s[DT], 1.0), 50.0)
        s[DT] += 0.05 * (min(dt, 10.0 * s[DT]) - s[DT])
    s[LAST_T] = t
    warm = n >= p[P_WARMUP]
    noise = p[P_NOISE]
    if s[INTEGRAL] > 0.0 and not (x >= 0.0 and x == np.floor(x)):
        s[INTEGRAL] = 0.0  # one fraction or negative value and the series is no count
    if s[UNIT] > 0.0:  # 0: a value outside [0, 1] seen; 1: all in [0, 1]; 2: and some exactly 0
        if not 0.0 <= x <= 1.0:
            s[UNIT] = 0.0
        elif x == 0.0 and s[UNIT] < 2.0:
            s[UNIT] = 2.0
    if noise == NOISE_RELATIVE and p[P_AUTO_COUNT] > 0.0 and s[INTEGRAL] > 0.0 and warm:
        noise = NOISE_POISSON  # every value so far a non-negative integer: counting noise at least
    rel_floor = p[P_REL_FLOOR]
    # -- seasonal position
    soff = 0.0
    b0 = 0
    b1 = 0
    frac = 0.0
    seasonal_on = False
    period = p[P_PERIOD_MS]
    if bins > 0:
        b0, b1, frac = _slots(t, p[P_TZ_MS], p[P_INV_PERIOD], bins)
        soff = (1.0 - frac) * s[dbase + b0] + frac * s[dbase + b1]
        seasonal_on = (t - s[FIRST_T]) >= 2.0 * period
    # -- weekly position (a second profile, after the daily one)
    woff = 0.0
    w0 = 0
    w1 = 0
    wfrac = 0.0
    weekly_on = False
    wperiod = p[P_WPERIOD_MS]
    wbase = dbase + int(p[P_BINS])
    if wbins > 0:
        w0, w1, wfrac = _slots(t, p[P_TZ_MS], p[P_INV_WPERIOD], wbins)
        woff = (1.0 - wfrac) * s[wbase + w0] + wfrac * s[wbase + w1]
        weekly_on = (t - s[FIRST_T]) >= 2.0 * wperiod
    # -- found-period position (a third profile, after the weekly one; the ring after it)
    ring = int(p[P_RING])
    fbase = wbase + int(p[P_WBINS])
    rbase = fbase + ring // 2
    fbins = int(s[FP_BINS])
    foff = 0.0
    f0 = 0
    f1 = 0
    ffrac = 0.0
    found_on = False
    if fbins > 0:
        f0, f1, ffrac = _slots(t, 0.0, s[FP_INV], fbins)
        foff = (1.0 - ffrac) * s[fbase + f0] + ffrac * s[fbase + f1]
        found_on = (t - s[FP_FIRST]) >= 2.0 * s[FP_PERIOD]
    # -- forecasts and scales
    f_l = s[LEVEL]
    f_s = s[SLEVEL] + soff
    floor = (p[P_SPREAD_FRAC] * _MAD_TO_SD * s[SPREAD]) ** 2 + 1e-18 * (1.0 + s[SMEAN] * s[SMEAN])
    var_l = (_MAD_TO_SD * s[MAD]) ** 2 + _sampling_var(f_l, w, noise, rel_floor) + floor
    var_s = (_MAD_TO_SD * s[SMAD]) ** 2 + _sampling_var(f_s, w, noise, rel_floor) + floor
    f_w = s[WLEVEL] + woff
    var_w = (_MAD_TO_SD * s[WMAD]) ** 2 + _sampling_var(f_w, w, noise, rel_floor) + floor
    sd_l = np.sqrt(var_l)
    sd_s = np.sqrt(var_s)
    sd_w = np.sqrt(var_w)
    trend_on = p[P_TREND] > 0.0
    f_t = s[TLEVEL] + p[P_TREND_DAMP] * s[SLOPE] * gap
    sd_t = 0.0
    if trend_on:
        sd_t = np.sqrt((_MAD_TO_SD * s[TMAD]) ** 2 + _sampling_var(f_t, w, noise, rel_floor) + floor)
    # the model with the smallest error scale forecasts: plain level, daily or weekly profile
    use_w = weekly_on and s[WMAD] < s[MAD] and not (seasonal_on and s[SMAD] <= s[WMAD])
    use_s = seasonal_on and s[SMAD] < s[MAD] and not use_w
    if use_w:
        fc = f_w
        sd = sd_w
        source = SOURCE_WEEKLY
    elif use_s:
        fc = f_s
        sd = sd_s
        source = SOURCE_SEASONAL
    else:
        fc = f_l
        sd = sd_l
        source = SOURCE_LEVEL
    chosen_mad = s[WMAD] if use_w else (s[SMAD] if use_s else s[MAD])
    # the found-period profile forecasts when its errors are smaller than those of the model chosen so far
    f_f = s[FP_LEVEL] + foff
    sd_f = 0.0
    use_f = found_on and s[FP_MAD] < chosen_mad
    if fbins > 0:
        sd_f = np.sqrt((_MAD_TO_SD * s[FP_MAD]) ** 2 + _sampling_var(f_f, w, noise, rel_floor) + floor)
    if use_f:
        fc = f_f
        sd = sd_f
        source = SOURCE_PERIOD
        chosen_mad = s[FP_MAD]
        use_w = False
        use_s = False
    # the trend model forecasts when its errors are smaller than those of the model chosen so far
    use_t = trend_on and warm and s[TMAD] < chosen_mad
    if use_t:
        fc = f_t
        sd = sd_t
        source = SOURCE_TREND
    if noise == NOISE_POISSON:
        fc = max(fc, 0.0)
    elif noise == NOISE_BINOMIAL:
        fc = min(max(fc, 0.0), 1.0)
    r = x - fc
    if noise != NOISE_RELATIVE:  # continuity correction for counts and count ratios
        cc = 0.5 if noise == NOISE_POISSON else 0.5 / max(w, 1.0)
        r = np.sign(r) * max(abs(r) - cc, 0.0)
    z = r / sd
    if noise != NOISE_RELATIVE:
        z = _count_z(z, x, fc, w, noise)
    elif p[P_AUTO_RATIO] > 0.0 and s[UNIT] == 2.0 and s[INTEGRAL] == 0.0 and warm:
        # a proportion of rare events: binomial, of as many trials as make its sampling variance the error's
        q = min(max(fc, 1e-6), 1.0 - 1e-6)
        z = _count_z(z, x, fc, min(max(q * (1.0 - q) / (sd * sd), 1.0), 1e9), NOISE_BINOMIAL)
    # -- CUSUM of clipped standardised deviations from a slow reference level (deseasonalised when the
    #    seasonal model is in use), so a shift the fast level absorbs still accumulates
    s_used = foff if use_f else (woff if use_w else (soff if use_s else 0.0))
    zc = (x - s_used - s[CREF]) / sd
    zc = min(max(zc, -p[P_CLIP] * 2.0), p[P_CLIP] * 2.0)
    k = p[P_CUSUM_K]
    s[CPOS] = max(0.0, s[CPOS] + zc - k) if warm else 0.0
    s[CNEG] = max(0.0, s[CNEG] - zc - k) if warm else 0.0
    cus = max(s[CPOS], s[CNEG])
    e_l = abs(z) * p[P_USE_LEVEL]
    e_c = 0.0  # the CUSUM's own evidence: only without the surprise tails (with them it only re-bases)
    evidence = e_l
    # -- calibrate against this series' own history of surprise (compressed evidence u = log(1 + e)):
    #    a series that often strays is less surprising when it strays again
    if p[P_TAIL_BINS] > 0.0:  # empirical tail of the point evidence, in −log10 of its rate
        tbase = HEADER
        # a point teaches the tails with weight 1; with ``P_RUN_LEARN`` = m, the points of one anomalous run
        # beyond its first m together only about as much as log of their number: an anomaly that lasts does not
        # teach the series that it is normal, while a spike that recurs is still learnt
        learn = 0.0
        if warm:
            learn = 1.0
            if p[P_RUN_LEARN] > 0.0 and s[RUN] >= p[P_RUN_LEARN]:
                learn = 1.0 / (1.0 + s[RUN] - p[P_RUN_LEARN])
        rate = _tail_surprise_rate(s, p, tbase, 0 if z >= 0.0 else 1, e_l, learn)
        evidence = -math.log10(max(rate, 1e-300))
        if warm:
            per_memory = 2 * int(p[P_TAIL_BINS])  # one memory's slots
            s[TINFL] = _next_inflation(s, tbase, per_memory, s[TINFL] * p[P_TAIL_GROW])
            if p[P_TAIL_DECAY_LONG] > 0.0:
                s[TINFL_LONG] = _next_inflation(s, tbase + per_memory, per_memory, s[TINFL_LONG] * p[P_TAIL_GROW_LONG])
    else:  # ... or against the long-run mean and variance of u, the CUSUM's evidence (as |z|) beside the point's
        e_c = p[P_USE_CUSUM] * p[P_CUSUM_Z] * cus / p[P_CUSUM_H]
        if e_c > evidence:
            evidence = e_c
            if e_c > p[P_BAND_Z]:  # the CUSUM, outside the band, says more than the point
                source = SOURCE_CHANGE
        u = np.log1p(evidence)
        s[USHORT] += p[P_CAL_SHORT] * (u - s[USHORT]) if warm else u - s[USHORT]
        if p[P_CAL] > 0.0:
            sd_u = np.sqrt(s[UVAR]) + 0.05
            short_sd = sd_u * np.sqrt(p[P_CAL_SHORT] / (2.0 - p[P_CAL_SHORT]))
            cal = max((u - s[UMEAN]) / sd_u, (s[USHORT] - s[UMEAN]) / short_sd)
            evidence = p[P_CAL] * max(cal, 0.0) + (1.0 - p[P_CAL]) * evidence
        if warm:
            ca = max(p[P_CAL_ALPHA], 1.0 / (n - p[P_WARMUP] + 1.0 + _U_PRIOR_N))
            du = u - s[UMEAN]
            s[UMEAN] += ca * du
            s[UVAR] = (1.0 - ca) * (s[UVAR] + ca * du * du)
    # -- too quiet: a run of exactly repeated values (a stuck gauge, an exporter repeating its last value). Each
    #    repeat is as rare as the series' own rate of exact repeats makes it — for counts, at least as likely as
    #    the forecast makes that count — summed over the run, and the run says what it has beyond the longest
    #    run the series showed lately (zeros excluded: a run of zeros is a drop, judged above)
    e_q = 0.0
    quiet_on = p[P_QUIET_DECAY] > 0.0
    if quiet_on:
        qd = p[P_QUIET_DECAY] if gap == 1.0 else p[P_QUIET_DECAY] ** gap
        eligible = s[LASTX] != 0.0 and np.isfinite(s[LASTX])
        repeat = eligible and x == s[LASTX]
        if repeat and warm:
            # Laplace's rule on the decayed counts: never rarer than one in as many points as the memory holds
            rate = (s[QNUM] + 1.0) / (s[QDEN] + 2.0)
            if s[INTEGRAL] > 0.0:  # a count: the forecast's probability of exactly this count, if larger
                zq = (x - fc) / sd
                rate = max(rate, min(math.exp(-0.5 * zq * zq) / (2.5066282746310002 * sd), 1.0))
            s[QREP] += -math.log10(rate)
            e_q = min(max(s[QREP] - s[QMAX], 0.0), p[P_QUIET_CAP])
            if e_q > evidence:
                evidence = e_q
                source = SOURCE_FLATLINE
        elif not repeat:
            s[QMAX] = max(s[QMAX], s[QREP])  # a run ended: the longest lately
            s[QREP] = 0.0
        s[QMAX] *= qd
        if eligible:
            s[QNUM] = qd * s[QNUM] + (1.0 if repeat else 0.0)
            s[QDEN] = qd * s[QDEN] + 1.0
        s[LASTX] = x
    # -- outside the band: the band is ``P_BAND_Z`` standard deviations of the forecast, so the point's |z| (or,
    #    without tails, the CUSUM's evidence, also as a |z|) decides it, never the calibrated surprise (decades)
    band = p[P_BAND_Z]
    outside = abs(z) > band or e_c > band or (quiet_on and e_q >= p[P_QUIET_CAP])
    # -- report once per episode: damp unless worse than the decaying peak
    peak = s[PEAK]
    if p[P_EPISODE_GAP] > 0.0 and s[QUIET] >= p[P_EPISODE_GAP]:
        peak = 0.0  # quiet long enough: the next excursion is a new episode, not the last one's echo
    shown = evidence if evidence > peak else evidence * p[P_DAMP]
    # ... and the more episodes a series had lately, the less a new one says
    if warm:
        shown = shown / (1.0 + p[P_EPIS_WEIGHT] * s[EPIS])
        s[EPIS] = s[EPIS] * (p[P_EPIS_DECAY] if gap == 1.0 else p[P_EPIS_DECAY] ** gap)
        # an episode is counted in the evidence's own units (decades of surprise with the tails), not by the
        # band: counting the points outside the band (|z| > ``P_BAND_Z``) instead was measured on 2026-12-07 and
        # divides nearly every episode (NAB 59.4 -> 20.0, the suite's development seed 75.7 -> 39.3;
        # docs/benchmarks.md)
        if evidence > p[P_EPISODE_EVIDENCE] and evidence > peak:
            s[EPIS] += 1.0
    s[PEAK] = max(peak * (p[P_DECAY] if gap == 1.0 else p[P_DECAY] ** gap), evidence) if warm else 0.0
    # -- the shape channel (opt-in): a new category of residual shape, shown when it says more
    if warm and p[P_SHAPE_BLOCKS] > 0.0:
        sh = p[P_SHAPE_WEIGHT] * shape_evidence(
            s, rbase + ring, z, int(p[P_SHAPE_BLOCKS]), int(p[P_SHAPE_BLOCK]), int(p[P_SHAPE_PROTOS]),
            p[P_SHAPE_VIGILANCE], p[P_SHAPE_DECAY], p[P_DAMP], p[P_DECAY],
        )  # fmt: skip
        if sh > shown:
            shown = sh
            source = SOURCE_SHAPE
    if warm:
        if outside:
            if s[RUN] == 0.0:
                s[RUN_T] = t
            s[RUN] += 1.0
            s[QUIET] = 0.0
        else:
            s[RUN] = 0.0
            s[QUIET] += gap
        kk = p[P_SCORE_K]
        out[O_SCORE] = shown * shown / (shown * shown + kk * kk)
        out[O_EXPECTED] = fc
        out[O_LOWER] = fc - band * sd
        out[O_UPPER] = fc + band * sd
        out[O_SOURCE] = source
        out[O_RUN_MS] = t - s[RUN_T] if s[RUN] > 0.0 else 0.0
        out[O_Z] = z
    else:
        _no_score(out, 0.0)
    # -- learn
    wgain = min(w / max(s[WMEAN], 1e-12), 1.0) if noise == NOISE_BINOMIAL else 1.0
    s[WMEAN] += 0.05 * (w - s[WMEAN])
    if warm:
        a = _gain(p[P_ALPHA] * wgain, gap)
        sa = _gain(p[P_SCALE_ALPHA] * wgain, gap)
        c = p[P_CLIP]
    else:
        a = 1.0 / (n + 1.0)
        sa = 1.0 / (n + 1.0)
        c = 1e300
    cap = p[P_MAD_CAP]
    e_l = x - f_l
    s[LEVEL] = f_l + a * min(max(e_l, -c * sd_l), c * sd_l)
    if not (warm and p[P_FREEZE] > 0.0 and abs(e_l) > cap * sd_l):  # optionally, outliers teach no scale
        s[MAD] += sa * (min(abs(e_l), cap * sd_l if warm else 1e300) - s[MAD])
    spa = max(_gain(p[P_SPREAD_ALPHA], gap), 1.0 / (n + 1.0))
    smean = s[SMEAN] + (s[SLOPE] * gap if trend_on else 0.0)  # the long-run mean moves with the trend
    s[SPREAD] += spa * (abs(x - smean) - s[SPREAD])
    s[SMEAN] = smean + spa * (x - smean)
    if trend_on:  # damped Holt, error-correction form, with the level model's gains and clip
        e_t = x - f_t
        e_tc = min(max(e_t, -c * sd_t), c * sd_t) if warm else e_t
        s[TLEVEL] = f_t + a * e_tc
        s[SLOPE] = p[P_TREND_DAMP] * s[SLOPE] + a * p[P_TREND] * e_tc
        if not (warm and p[P_FREEZE] > 0.0 and abs(e_t) > cap * sd_t):
            s[TMAD] += sa * (min(abs(e_t), cap * sd_t if warm else 1e300) - s[TMAD])
    fa = _gain(p[P_FAST], gap)
    s[FAST] += fa * (x - s[FAST])
    ra = _gain(p[P_CUSUM_REF], gap) if warm else 1.0 / (n + 1.0)
    s[CREF] += ra * min(max(x - s_used - s[CREF], -c * sd), c * sd)
    if bins > 0:
        e_s = x - f_s
        cs = c if seasonal_on else 1e300  # learn the shape freely until the model is in use
        e_sc = min(max(e_s, -cs * sd_s), cs * sd_s)
        s[SLEVEL] += a * p[P_SLEVEL_GAIN] * e_sc  # slow: the profile, not the level, follows the day
        _learn_profile(s, dbase, b0, b1, frac, _profile_gain(p[P_GAMMA], s[DT] * bins, t - s[FIRST_T]), e_sc)
        if not (warm and p[P_FREEZE] > 0.0 and abs(e_s) > cap * sd_s):
            s[SMAD] += sa * (min(abs(e_s), cap * sd_s if warm else 1e300) - s[SMAD])
    else:
        s[SLEVEL] = s[LEVEL]
    if wbins > 0:  # the daily block's arithmetic on the weekly model (a shared helper measured ~9 % slower)
        e_w = x - f_w
        cw = c if weekly_on else 1e300
        e_wc = min(max(e_w, -cw * sd_w), cw * sd_w)
        s[WLEVEL] += a * p[P_SLEVEL_GAIN] * e_wc
        _learn_profile(s, wbase, w0, w1, wfrac, _profile_gain(p[P_GAMMA], s[DT] * wbins, t - s[FIRST_T]), e_wc)
        if not (warm and p[P_FREEZE] > 0.0 and abs(e_w) > cap * sd_w):
            s[WMAD] += sa * (min(abs(e_w), cap * sd_w if warm else 1e300) - s[WMAD])
    else:
        s[WLEVEL] = s[LEVEL]
    if fbins > 0:
        e_f = x - f_f
        cf = c if found_on else 1e300
        e_fc = min(max(e_f, -cf * sd_f), cf * sd_f)
        s[FP_LEVEL] += a * p[P_SLEVEL_GAIN] * e_fc
        _learn_profile(s, fbase, f0, f1, ffrac, _profile_gain(p[P_GAMMA], s[FP_PERIOD], t - s[FP_FIRST]), e_fc)
        if not (warm and p[P_FREEZE] > 0.0 and abs(e_f) > cap * sd_f):
            s[FP_MAD] += sa * (min(abs(e_f), cap * sd_f if warm else 1e300) - s[FP_MAD])
    else:
        s[FP_LEVEL] = s[LEVEL]
    if ring > 0:
        s[RACC] += x
        s[RCNT] += 1.0
    if ring > 0 and s[RCNT] >= p[P_RING_BLOCK]:  # the ring of recent block means, and the period search
        rp = int(s[RPOS])  # blocks so far
        # the ring is filled only in the ``ring`` blocks before a search (after the first two, one block in
        # eight: a memory write per point costs ~15 % of the kernel's time across many series)
        if rp < 2 * ring or rp % (8 * ring) >= 7 * ring:
            s[rbase + rp % ring] = s[RACC] / s[RCNT]
        s[RACC] = 0.0
        s[RCNT] = 0.0
        rp += 1
        s[RPOS] = rp
        if rp == ring or rp == 2 * ring or (rp > 2 * ring and rp % (8 * ring) == 0):
            lag, strength = _find_period(s, rbase, ring, rp % ring)
            new_period = lag * p[P_RING_BLOCK] * s[DT]
            for cal, cal_bins in ((p[P_PERIOD_MS], bins), (p[P_WPERIOD_MS], wbins)):
                if cal_bins > 0 and abs(new_period - cal) < 0.1 * cal:
                    lag = 0  # the daily or weekly profile already learns this period, in local time
            if lag == 0:
                s[FP_BINS] = 0.0
                s[FP_ACF] = 0.0
            elif fbins == 0 or abs(new_period - s[FP_PERIOD]) > 0.1 * s[FP_PERIOD]:
                s[FP_PERIOD] = new_period
                s[FP_INV] = 1.0 / new_period
                s[FP_BINS] = float(lag)
                s[FP_FIRST] = t
                s[FP_LEVEL] = s[LEVEL]
                s[FP_MAD] = s[MAD]
                for b in range(ring // 2):
                    s[fbase + b] = 0.0
            s[FP_ACF] = strength
    if warm and p[P_USE_CUSUM] > 0.0 and cus > p[P_CUSUM_H]:
        # change point: re-base the model in use on the recent values and forget the evidence
        if use_w:
            s[WLEVEL] = s[FAST] - woff
        elif use_s:
            s[SLEVEL] = s[FAST] - soff
        elif use_f:
            s[FP_LEVEL] = s[FAST] - foff
        else:
            s[LEVEL] = s[FAST]
        if trend_on:
            s[TLEVEL] = s[FAST]
            s[SLOPE] = 0.0
        s[CREF] = s[FAST] - s_used
        s[CPOS] = 0.0
        s[CNEG] = 0.0
    s[N] = n + 1.0


@numba.njit(cache=True, error_model="numpy")
def run_many(
    states: np.ndarray, p: np.ndarray, t: float, ids: np.ndarray, xs: np.ndarray, ws: np.ndarray, out: np.ndarray
) -> None:
    """One time step of many series: ``point`` for ``states[ids[i]]`` and ``xs[i]``."""
    for i in range(ids.size):
        point(states[ids[i]], p, t, xs[i], ws[i], out[i])


@numba.njit(cache=True, error_model="numpy")
def run_chunk(
    state: np.ndarray, p: np.ndarray, ts: np.ndarray, xs: np.ndarray, ws: np.ndarray, out: np.ndarray
) -> None:
    """Consecutive points of one series: ``point`` for every ``(ts[i], xs[i])`` in order."""
    for i in range(ts.size):
        point(state, p, ts[i], xs[i], ws[i], out[i])
