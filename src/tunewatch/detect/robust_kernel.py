"""The compiled point loop of the robust level detector (:mod:`tunewatch.detect.robust`).

:func:`robust_points` scores and learns a sequence of points, one after the other, each from the state of its
own series (arrays indexed by series id, the detector's own). A detector step is one call over the series of a
time step; since every point touches only its own series, the points of many time steps in time order are also
one call (:meth:`RobustLevelDetector.step_many`), with the same results as one call per step.

The exact count tails use SciPy's own special functions (``scipy.special.cython_special``, the code behind
``scipy.special``'s ufuncs), called from compiled code by symbol name, so the compiled loop is cached on disk
like the project's other kernels and gives the results the NumPy form of the detector gave (sums of
beta-binomial probabilities are added in order rather than pairwise: equal to about 1e-15).

Arithmetic is written in the order the NumPy form evaluated it (``a * b * c`` as ``(a * b) * c``); maxima,
minima and clips propagate NaN as ``np.maximum``/``np.minimum`` do.
"""

from __future__ import annotations

import math
from typing import Any, Final

import llvmlite.binding as llvm
import numba
import numpy as np
from numba import types
from numba.extending import get_cython_function_address

from tunewatch.detect.base import FloatArray, IntArray

NOISE_BINOMIAL: Final = 0
NOISE_POISSON: Final = 1
NOISE_RELATIVE: Final = 2

#: Beta-binomial tails are summed exactly up to this many attempts; beyond, the normal approximation with the
#: beta-binomial's variance is accurate (and a sum over every count would be slow).
EXACT_BETABINOM_MAX_N: Final = 20_000
#: a longer pool is judged only for series whose shorter pool rests on fewer attempts (ratios) or expected
#: events (counts) than this: above it, the shorter pool already sees any shift that matters
LONG_POOL_BELOW: Final = 300.0
CHANNELS: Final = 6  # pooled channels: observed, expected, variance, weight, standard deviation, points

# ---- parameters (a float64 vector, see RobustLevelDetector.kernel_params) ------------------------------------
(
    P_ALPHA,
    P_BETA,
    P_PHI,
    P_SCALE_ALPHA,
    P_CLIP,
    P_LEVEL_CLIP,
    P_WARMUP,
    P_BAND_Z,
    P_HALF_Z2,
    P_REL_FLOOR,
    P_OUTLIER_GAIN,
    P_RELEASE_Z,
    P_ADOPT_AFTER,
    P_RETURN_HORIZON,
    P_COUNT_REF,
    P_ALPHA_LOW,
    P_RARE_GAIN,
) = range(17)
N_PARAMS: Final = 17

# ---- SciPy's special functions, by symbol (cacheable: the address is bound when this module is imported) -----
_SPECIAL: Final = {
    "betainc": ("__pyx_fuse_0betainc", 3),
    "betaln": ("betaln", 2),
    "gammaln": ("gammaln", 1),
    "pdtr": ("pdtr", 2),
    "pdtrc": ("pdtrc", 2),
    "ndtr": ("__pyx_fuse_1ndtr", 1),
    "ndtri": ("ndtri", 1),
}


def _external(name: str) -> Any:  # called from compiled code only (a Numba type, not a Python callable)
    cname, arity = _SPECIAL[name]
    symbol = f"tunewatch_scipy_{name}"
    llvm.add_symbol(symbol, get_cython_function_address("scipy.special.cython_special", cname))
    # every cython_special function takes a last `int __pyx_skip_dispatch` argument (0: no Python dispatch)
    return types.ExternalFunction(symbol, types.float64(*([types.float64] * arity), types.intc))


_betainc = _external("betainc")
_betaln = _external("betaln")
_gammaln = _external("gammaln")
_pdtr = _external("pdtr")
_pdtrc = _external("pdtrc")
_ndtr = _external("ndtr")
_ndtri = _external("ndtri")


@numba.njit(cache=True, inline="always", error_model="numpy")
def _max(a: float, b: float) -> float:
    """``np.maximum``: NaN if either is NaN."""
    return a if (a >= b or a != a) else b


@numba.njit(cache=True, inline="always", error_model="numpy")
def _min(a: float, b: float) -> float:
    """``np.minimum``: NaN if either is NaN."""
    return a if (a <= b or a != a) else b


@numba.njit(cache=True, inline="always", error_model="numpy")
def _clip(a: float, lo: float, hi: float) -> float:
    return _min(_max(a, lo), hi)


@numba.njit(cache=True, inline="always", error_model="numpy")
def _sign(z: float) -> float:
    if z > 0.0:
        return 1.0
    if z < 0.0:
        return -1.0
    return z  # 0 or NaN


@numba.njit(cache=True, error_model="numpy")
def betabinom_point(k: float, n: float, a: float, b: float) -> tuple[float, float]:
    """``P(X >= k)`` and ``P(X <= k)`` for ``X ~ BetaBinomial(n, a, b)`` (integer ``k``, ``n``)."""
    if n <= EXACT_BETABINOM_MAX_N:
        g = _gammaln(n + 1.0, 0)
        bab = _betaln(a, b, 0)
        up = 0.0
        lo = 0.0
        for jj in range(int(n) + 1):
            j = float(jj)
            log_pmf = g - _gammaln(j + 1.0, 0) - _gammaln(n - j + 1.0, 0) + _betaln(j + a, n - j + b, 0) - bab
            pmf = math.exp(log_pmf)
            if j >= k:
                up += pmf
            if j <= k:
                lo += pmf
        return _min(up, 1.0), _min(lo, 1.0)
    mean = n * a / (a + b)
    sd = math.sqrt(n * a * b * (a + b + n) / ((a + b) * (a + b) * (a + b + 1.0)))
    return _ndtr(-(k - 0.5 - mean) / sd, 0), _ndtr((k + 0.5 - mean) / sd, 0)


@numba.njit(cache=True, error_model="numpy")
def betabinom_many(k: FloatArray, n: FloatArray, a: FloatArray, b: FloatArray) -> tuple[FloatArray, FloatArray]:
    """:func:`betabinom_point` of every row."""
    upper = np.empty(k.size)
    lower = np.empty(k.size)
    for i in range(k.size):
        upper[i], lower[i] = betabinom_point(k[i], n[i], a[i], b[i])
    return upper, lower


@numba.njit(cache=True, error_model="numpy")
def tail_z(noise: int, x: float, forecast: float, w: float, z: float, history: float) -> float:
    """``z`` shrunk to the normal quantile of the exact count tail where that is less extreme (for ratios, the
    beta-binomial tail of a rate learnt from ``history`` attempts where the binomial tail is below 0.001)."""
    if noise == NOISE_RELATIVE:
        return z
    if noise == NOISE_BINOMIAL:
        n = _max(np.rint(w), 1.0)
        k = _clip(np.rint(x * n), 0.0, n)
        p = _clip(forecast, 1e-6, 1 - 1e-6)
        upper = _betainc(_max(k, 1.0), n - k + 1, p, 0) if k >= 1 else 1.0  # P(X >= k)
        lower = _betainc(_max(n - k, 1.0), k + 1, 1 - p, 0) if k < n else 1.0  # P(X <= k)
        if _min(upper, lower) < 1e-3:
            bb_upper, bb_lower = betabinom_point(k, n, p * history + 0.5, (1 - p) * history + 0.5)
            upper = _max(upper, bb_upper)
            lower = _max(lower, bb_lower)
    else:  # only the tail on the side of z counts
        k = _max(np.rint(x), 0.0)
        lam = _max(forecast, 1e-6)
        if z > 0:
            upper, lower = (_pdtrc(k - 1, lam, 0) if k > 0 else 1.0), 1.0
        else:
            upper, lower = 1.0, _pdtr(k, lam, 0)
    if z > 0:
        tail = _max(_ndtri(1 - _clip(upper, 1e-300, 1.0), 0), 0.0)
    else:
        tail = _min(_ndtri(_clip(lower, 1e-300, 1.0), 0), 0.0)
    return tail if abs(tail) < abs(z) else z


@numba.njit(cache=True, error_model="numpy")
def negbin_z(k: float, mean: float, var: float, z: float) -> float:
    """The normal quantile of the tail of ``k`` (on the side of ``z``) under the negative binomial with this
    ``mean`` and ``var`` (the Poisson where ``var <= mean``): exact count tails for sums of a few events."""
    mean = _max(mean, 1e-9)
    over = var > mean * (1 + 1e-9)
    r = mean * mean / _max(var - mean, 1e-300)
    p = mean / _max(var, 1e-300)
    # only the tail on the side of z counts: P(X >= k) = I_{1-p}(k, r) for k >= 1; P(X <= k) = I_p(r, k + 1)
    if z > 0:
        upper = 1.0
        if k >= 1:
            upper = _betainc(_max(k, 1.0), r, 1 - p, 0) if over else _pdtrc(k - 1, mean, 0)
        if upper != upper:
            upper = 1.0
        return _max(-_ndtri(_clip(upper, 1e-300, 1.0), 0), 0.0)
    lower = _betainc(r, k + 1, p, 0) if over else _pdtr(k, mean, 0)
    if lower != lower:
        lower = 1.0
    return _min(_ndtri(_clip(lower, 1e-300, 1.0), 0), 0.0)


@numba.njit(cache=True, inline="always", error_model="numpy")
def _noise_var(noise: int, expected: float, w: float, rel_floor: float) -> float:
    wm = _max(w, 1.0)
    if noise == NOISE_BINOMIAL:
        p = _clip(expected, 0.002, 0.998)
        return p * (1 - p) / wm
    t = rel_floor * abs(expected)
    base = t * t
    if noise == NOISE_POISSON:
        return _max(abs(expected), 1.0) + base
    return base + 1e-12


@numba.njit(cache=True, inline="always", error_model="numpy")
def _clear_pool(ring: FloatArray, sums: FloatArray, head: IntArray, r: int) -> None:
    ring[:, :, r] = 0.0
    sums[:, :, r] = 0.0
    head[r] = 0


@numba.njit(cache=True, error_model="numpy", nogil=True)
def robust_points(
    params: FloatArray,
    noise: int,
    pools: IntArray,
    level: FloatArray,
    trend: FloatArray,
    var: FloatArray,
    seen_n: IntArray,
    ring: FloatArray,
    sums: FloatArray,
    head: IntArray,
    wmean: FloatArray,
    streak: IntArray,
    side: FloatArray,
    shadow: FloatArray,
    ref: FloatArray,
    ref_age: IntArray,
    ids: IntArray,
    values: FloatArray,
    weights: FloatArray,
    out: FloatArray,
) -> None:
    """Score and learn the points ``(ids, values, weights)`` in order, updating the state arrays in place.

    ``out`` (9 × points) receives score, expected, lower, upper and the evidence's weight, value, expected
    value, excess and points (see :class:`tunewatch.detect.base.Detection`).
    """
    alpha, beta, phi = params[P_ALPHA], params[P_BETA], params[P_PHI]
    clip, level_clip = params[P_CLIP], params[P_LEVEL_CLIP]
    rel_floor = params[P_REL_FLOOR]
    binomial = noise == NOISE_BINOMIAL
    pooled = pools.size > 0 and noise != NOISE_RELATIVE  # sums and quantiles of a few events are too lumpy
    ring_len = ring.shape[1]
    entry = np.zeros(CHANNELS)
    leaving = np.zeros((max(pools.size, 1), CHANNELS))
    nan = np.nan
    for i in range(ids.size):
        x = values[i]
        w = weights[i]
        if not (math.isfinite(x) and w > 0):
            for c in range(4):
                out[c, i] = nan
            out[4, i] = w
            out[5, i] = nan
            out[6, i] = nan
            out[7, i] = nan
            out[8, i] = 1.0
            continue
        r = ids[i]
        seen = seen_n[r]
        fresh = seen == 0
        lvl = x if fresh else level[r]
        tr = 0.0 if fresh else trend[r]
        forecast = lvl + phi * tr
        if binomial:
            forecast = _clip(forecast, 0.0, 1.0)
        elif noise == NOISE_POISSON:
            forecast = _max(forecast, 0.0)
        resid = x - forecast
        nv = _noise_var(noise, forecast, w, rel_floor)
        sd = math.sqrt(var[r] + nv)
        history = 0.0
        wm = w
        if binomial:  # attempts behind the expected rate: the EWMA's memory of typical weights
            wm = wmean[r] if wmean[r] > 0 else w
            wmean[r] = wm + alpha * (w - wm)
            history = wm * (2.0 - alpha) / alpha
        z = tail_z(noise, x, forecast, w, resid / sd, history)
        warm = seen >= params[P_WARMUP]
        a = alpha
        if noise == NOISE_POISSON:
            a = _clip(alpha * forecast / params[P_COUNT_REF], params[P_ALPHA_LOW], alpha)
        elif binomial and params[P_RARE_GAIN] > 0.0:  # the same for the rarer outcome's typical count of a ratio
            rare = _min(forecast, 1.0 - forecast) * wm
            a = _clip(alpha * rare / params[P_COUNT_REF], params[P_ALPHA_LOW], alpha)
        ev_w, ev_v, ev_e, ev_x, ev_p = w, x, forecast, resid, 1.0
        if pooled:
            n_w = _max(w, 1.0) if binomial else 1.0
            if binomial:
                pv = sd * n_w
                pv = pv * pv
            else:
                t = rel_floor * forecast
                pv = var[r] + forecast + t * t  # Poisson noise of the expectation itself, without the floor of 1
            if warm:
                entry[0], entry[1], entry[2] = x * n_w, forecast * n_w, pv
                entry[3], entry[4], entry[5] = n_w, math.sqrt(pv), 1.0
            else:
                entry[:] = 0.0
            h = head[r]
            for j in range(pools.size):  # read before the write
                slot = (h - pools[j]) % ring_len
                for c in range(CHANNELS):
                    leaving[j, c] = ring[c, slot, r]
            slot = h % ring_len
            for c in range(CHANNELS):
                ring[c, slot, r] = entry[c]
            head[r] = h + 1
            small = True
            for j in range(pools.size):
                for c in range(CHANNELS):
                    sums[j, c, r] = sums[j, c, r] + (entry[c] - (leaving[j, c] if h >= pools[j] else 0.0))
                k = _max(sums[j, 0, r], 0.0)
                e = sums[j, 1, r]
                n = sums[j, 3, r]
                pts = sums[j, 5, r]
                # the level's own error: an EWMA's a / (2 - a) of a point's variance, or a mean's 1 / n while it
                # rests on fewer points; for counts also half an event of prior over those points
                young = 1.0 / _max(float(seen), 1.0)
                v = _max(sums[j, 2, r], 0.0) + _max(a / (2.0 - a), young) * sums[j, 4, r] * sums[j, 4, r]
                if not binomial:
                    v = v + 0.5 * (pts * young) * (pts * young)
                zp = (k - e) / math.sqrt(_max(v, 1e-300))
                # longer pools only where the shorter one rests on little; exact tails only where they can count
                can = small and warm and pts >= 2
                if binomial:
                    can = can and zp * z >= 0 and abs(zp) > abs(z)
                if can and zp * z >= 0:  # (an exact tail keeps the sign of zp: opposite to z, it cannot count)
                    if binomial:
                        nn = _max(n, 1.0)
                        zp = tail_z(NOISE_BINOMIAL, k / nn, e / nn, nn, zp, history)
                    else:
                        zp = negbin_z(np.rint(k), e, v, zp)
                if not small:
                    zp = 0.0
                small = small and (n if binomial else e) < LONG_POOL_BELOW
                if warm and pts >= 2 and zp * z >= 0 and abs(zp) > abs(z):
                    per = _max(n if binomial else pts, 1.0)
                    z, ev_w, ev_v, ev_e, ev_x, ev_p = zp, n, k / per, e / per, k - e, pts
        # the end of an anomaly is not an alert: back towards the normal before an adopted change, unscored
        ref_r = ref[r]
        back = (
            warm and math.isfinite(ref_r) and abs(z) > clip and z * (ref_r - forecast) > 0
            and abs(ev_v - ref_r) < abs(ev_v - forecast)
        )  # fmt: skip
        if back:
            out[0, i] = 0.0
        elif warm:
            out[0, i] = z * z / (z * z + params[P_HALF_Z2])
        else:
            out[0, i] = nan
        if warm:
            out[1, i] = forecast
            out[2, i] = forecast - params[P_BAND_Z] * sd
            out[3, i] = forecast + params[P_BAND_Z] * sd
        else:
            out[1, i] = out[2, i] = out[3, i] = nan
        out[4, i], out[5, i], out[6, i], out[7, i], out[8, i] = ev_w, ev_v, ev_e, ev_x, ev_p
        # learn (see RobustLevelDetector.step)
        deviating = warm and abs(z) > clip
        old_streak = streak[r]
        if deviating:
            st = old_streak + 1 if (old_streak > 0 and _sign(z) == side[r]) else 1
            side[r] = _sign(z)
        else:
            st = 0 if abs(z) < params[P_RELEASE_Z] else old_streak
        if back:
            st = 0
        frozen = st > 0
        gain = a if warm else 1.0 / (seen + 1.0)
        limit = clip * sd if warm else np.inf
        rc = _clip(resid, -limit, limit)
        r_level = _clip(resid, -level_clip * sd, level_clip * sd)  # Huber: bounded influence
        if frozen:
            gain = gain * params[P_OUTLIER_GAIN]
        new_level = forecast + gain * (r_level if warm else resid)
        new_trend = phi * tr + (0.0 if frozen else a * beta * rc) if warm else 0.0
        sh = shadow[r] if (frozen and old_streak > 0) else forecast
        sh = sh + a * (x - sh)
        if frozen and st >= params[P_ADOPT_AFTER]:
            new_level, new_trend, st = sh, 0.0, 0
            ref[r] = forecast
            ref_age[r] = 0
            _clear_pool(ring, sums, head, r)
        elif back:
            # back towards the remembered normal, but never past where the series is now: the normal was learnt
            # before the change (hours ago), and a daily curve may have moved meanwhile
            new_level = ev_v if abs(ev_v - forecast) < abs(ref_r - forecast) else ref_r
            new_trend = 0.0
            ref[r] = nan
            _clear_pool(ring, sums, head, r)
        shadow[r] = sh
        streak[r] = st
        ref_age[r] += 1
        if math.isfinite(ref[r]) and ref_age[r] > params[P_RETURN_HORIZON]:
            ref[r] = nan
        trend[r] = new_trend
        level[r] = new_level
        extra = _max(rc * rc - nv, 0.0)
        sa = (0.0 if frozen else params[P_SCALE_ALPHA]) if warm else 1.0 / (seen + 1.0)
        var[r] = 0.0 if fresh else (1 - sa) * var[r] + sa * extra
        seen_n[r] = seen + 1
