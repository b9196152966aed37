"""The NumPy form of the robust level detector, frozen as it was before its point loop was compiled
(src/tunewatch/detect/robust_kernel.py): the oracle of tests/detect/test_robust_kernel.py. Not used by the package."""

from __future__ import annotations

from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
from scipy import special

from tunewatch.detect.base import Detection, FloatArray, IntArray, VectorDetector

Noise = Literal["binomial", "poisson", "relative"]


#: Beta-binomial tails are summed exactly up to this many attempts; beyond, the normal approximation with the
#: beta-binomial's variance is accurate (and a sum over every count would be slow).
EXACT_BETABINOM_MAX_N = 20_000
_CELLS_PER_CHUNK = 1 << 22  # rows are summed in chunks of at most this many (row, count) cells
#: a longer pool is judged only for series whose shorter pool rests on fewer attempts (ratios) or expected
#: events (counts) than this: above it, the shorter pool already sees any shift that matters
_LONG_POOL_BELOW: Final = 300.0
_CHANNELS: Final = 6  # pooled channels: observed, expected, variance, weight, standard deviation, points


def betabinom_tails(k: FloatArray, n: FloatArray, a: FloatArray, b: FloatArray) -> tuple[FloatArray, FloatArray]:
    """``P(X >= k)`` and ``P(X <= k)`` for ``X ~ BetaBinomial(n, a, b)``, vectorised (integer ``k``, ``n``).

    SciPy's ``betabinom`` sums the probabilities element by element in Python; here the probabilities of all
    counts of every row are one array expression (rows up to :data:`EXACT_BETABINOM_MAX_N` attempts), and
    larger rows use the normal approximation with continuity correction.
    """
    upper = np.ones(k.size)
    lower = np.ones(k.size)
    small = np.flatnonzero(n <= EXACT_BETABINOM_MAX_N)
    small = small[np.argsort(n[small], kind="stable")]  # similar sizes share a chunk
    start = 0
    while start < small.size:
        stop = start + 1
        while stop < small.size and (stop - start + 1) * (int(n[small[stop]]) + 1) <= _CELLS_PER_CHUNK:
            stop += 1
        rows = small[start:stop]
        width = int(n[rows].max()) + 1
        j = np.arange(width, dtype=np.float64)[None, :]
        nn, aa, bb, kk = n[rows, None], a[rows, None], b[rows, None], k[rows, None]
        inside = j <= nn
        jj = np.where(inside, j, 0.0)
        log_pmf = (
            special.gammaln(nn + 1) - special.gammaln(jj + 1) - special.gammaln(nn - jj + 1)
            + special.betaln(jj + aa, nn - jj + bb) - special.betaln(aa, bb)
        )  # fmt: skip
        pmf = np.where(inside, np.exp(log_pmf), 0.0)
        upper[rows] = np.minimum(np.where(j >= kk, pmf, 0.0).sum(axis=1), 1.0)
        lower[rows] = np.minimum(np.where(j <= kk, pmf, 0.0).sum(axis=1), 1.0)
        start = stop
    big = n > EXACT_BETABINOM_MAX_N
    if big.any():
        kb, nb, ab, bb_ = k[big], n[big], a[big], b[big]
        mean = nb * ab / (ab + bb_)
        sd = np.sqrt(nb * ab * bb_ * (ab + bb_ + nb) / ((ab + bb_) ** 2 * (ab + bb_ + 1)))
        upper[big] = special.ndtr(-(kb - 0.5 - mean) / sd)
        lower[big] = special.ndtr((kb + 0.5 - mean) / sd)
    return upper, lower


class NumpyRobustLevelDetector(VectorDetector):
    """The robust detector as NumPy array expressions (version 3), before it was compiled."""

    name = "robust"
    version = 3  # 2: pooled evidence (last points, typical weight); 3: two pools, anomaly memory, adoption

    def __init__(
        self,
        *,
        noise: Noise = "relative",
        alpha: float = 0.15,
        beta: float = 0.05,
        phi: float = 0.9,
        scale_alpha: float = 0.05,
        clip: float = 3.0,
        level_clip: float = 1.5,
        warmup: int = 15,
        band_z: float = 4.0,
        score_half_z: float = 4.0,
        relative_floor: float = 0.02,
        pool: int = 5,
        long_pool: int = 15,
        outlier_gain: float = 0.0,
        release_z: float = 2.0,
        adopt_after: int = 60,
        return_horizon: int = 360,
        count_ref: float = 20.0,
        alpha_min: float = 0.02,
        rare_gain: bool = True,
    ) -> None:
        self.noise = noise
        self.alpha, self.beta, self.phi = alpha, beta, phi
        self.scale_alpha = scale_alpha
        self.clip = clip
        self.level_clip = level_clip
        self.warmup = warmup
        self.band_z = band_z
        self.score_half_z = score_half_z
        self.relative_floor = relative_floor
        if pool < 0 or long_pool < 0:
            raise ValueError(f"pool, long_pool: must be >= 0, got {pool}, {long_pool}")
        self.pool = pool
        self.long_pool = long_pool
        #: the pooled windows, in points (a pool of one point says nothing the point does not)
        self.pools = tuple(sorted({m for m in (pool, long_pool) if m > 1}))
        if not 0.0 <= outlier_gain <= 1.0:
            raise ValueError(f"outlier_gain: must be in [0, 1], got {outlier_gain}")
        self.outlier_gain = outlier_gain
        if not 0.0 <= release_z <= clip:
            raise ValueError(f"release_z: must be in [0, clip], got {release_z}")
        self.release_z = release_z
        if adopt_after < 1 or return_horizon < 0:
            raise ValueError(f"adopt_after, return_horizon: must be >= 1 and >= 0, got {adopt_after}, {return_horizon}")
        self.adopt_after = adopt_after
        self.return_horizon = return_horizon
        #: counts below ``count_ref`` a point learn with a gain shrunk in proportion (at least ``alpha_min``):
        #: at 2 events a minute one minute says little, and a level that follows it learns a drop before the
        #: pooled evidence can see it
        self.count_ref = count_ref
        self.alpha_min = alpha_min
        self.rare_gain = rare_gain
        self._level = np.zeros(0)
        self._trend = np.zeros(0)
        self._var = np.zeros(0)  # learned extra variance beyond sampling noise
        self._n = np.zeros(0, dtype=np.int64)
        # the last max(pools) scored points of each series, in count units: observed, expected, variance, weight,
        # standard deviation, 1 (see _pooled); and their running sums over each pool
        self._ring = np.zeros((_CHANNELS, max(self.pools, default=1), 0))
        self._sums = np.zeros((len(self.pools), _CHANNELS, 0))
        self._head = np.zeros(0, dtype=np.int64)
        self._wmean = np.zeros(0)  # typical weight (attempts per point) of each series
        self._streak = np.zeros(0, dtype=np.int64)  # points the series has deviated (on one side); 0: normal
        self._side = np.zeros(0)  # side of the last deviation (+1 / -1)
        self._shadow = np.zeros(0)  # where the series is while it deviates (what adoption would take)
        self._ref = np.zeros(0)  # the level before an adopted change (NaN: none), for `return_horizon` points
        self._ref_age = np.zeros(0, dtype=np.int64)

    def _grow(self, size: int) -> None:
        if size > self._level.size:
            extra = size - self._level.size
            self._level = np.concatenate([self._level, np.zeros(extra)])
            self._trend = np.concatenate([self._trend, np.zeros(extra)])
            self._var = np.concatenate([self._var, np.zeros(extra)])
            self._n = np.concatenate([self._n, np.zeros(extra, dtype=np.int64)])
            self._ring = np.concatenate([self._ring, np.zeros((*self._ring.shape[:2], extra))], axis=2)
            self._sums = np.concatenate([self._sums, np.zeros((*self._sums.shape[:2], extra))], axis=2)
            self._head = np.concatenate([self._head, np.zeros(extra, dtype=np.int64)])
            self._wmean = np.concatenate([self._wmean, np.zeros(extra)])
            self._streak = np.concatenate([self._streak, np.zeros(extra, dtype=np.int64)])
            self._side = np.concatenate([self._side, np.zeros(extra)])
            self._shadow = np.concatenate([self._shadow, np.zeros(extra)])
            self._ref = np.concatenate([self._ref, np.full(extra, np.nan)])
            self._ref_age = np.concatenate([self._ref_age, np.zeros(extra, dtype=np.int64)])

    def _noise_var(self, expected: FloatArray, weights: FloatArray) -> FloatArray:
        w = np.maximum(weights, 1.0)
        if self.noise == "binomial":
            p = np.clip(expected, 0.002, 0.998)
            return p * (1 - p) / w
        base = (self.relative_floor * np.abs(expected)) ** 2
        if self.noise == "poisson":
            return np.maximum(np.abs(expected), 1.0) + base
        return base + 1e-12

    def _feasible(self, forecast: FloatArray) -> FloatArray:
        """Keep forecasts where the metric can be: rates in [0, 1], counts non-negative."""
        if self.noise == "binomial":
            return np.clip(forecast, 0.0, 1.0)
        if self.noise == "poisson":
            return np.maximum(forecast, 0.0)
        return forecast

    def _tail_z(
        self, x: FloatArray, forecast: FloatArray, w: FloatArray, z: FloatArray, history: FloatArray | None = None
    ) -> FloatArray:
        """``z`` shrunk to the normal quantile of the exact count tail where that is less extreme.

        ``history``: for ratios, the attempts the expected rate was learnt from. A rate learnt from a few
        hundred attempts is uncertain (no failure in 400 attempts does not make the rate 0), so where the
        binomial tail says much (below 0.001), the beta-binomial tail of that uncertainty is used, which says less.
        """
        if self.noise == "relative" or z.size == 0:
            return z
        if self.noise == "binomial":
            n = np.maximum(np.round(w), 1.0)
            k = np.clip(np.round(x * n), 0, n)
            p = np.clip(forecast, 1e-6, 1 - 1e-6)
            # binomial tails through the regularised incomplete beta function (accepts float arguments)
            upper = np.where(k >= 1, special.betainc(np.maximum(k, 1.0), n - k + 1, p), 1.0)  # P(X >= k)
            lower = np.where(k < n, special.betainc(np.maximum(n - k, 1.0), k + 1, 1 - p), 1.0)  # P(X <= k)
            if history is not None:
                # only where the binomial tail is extreme (over 3.1 deviations) is the slower beta-binomial worth it
                sure = np.minimum(upper, lower) < 1e-3
                if sure.any():
                    a = p[sure] * history[sure] + 0.5
                    b = (1 - p[sure]) * history[sure] + 0.5
                    bb_upper, bb_lower = betabinom_tails(k[sure], n[sure], a, b)
                    upper[sure] = np.maximum(upper[sure], bb_upper)
                    lower[sure] = np.maximum(lower[sure], bb_lower)
        else:
            k = np.maximum(np.round(x), 0)
            lam = np.maximum(forecast, 1e-6)
            upper = np.where(k > 0, special.pdtrc(k - 1, lam), 1.0)
            lower = special.pdtr(k, lam)
        tail = np.where(z > 0, special.ndtri(1 - np.clip(upper, 1e-300, 1.0)), special.ndtri(np.clip(lower, 1e-300, 1)))
        tail = np.where(z > 0, np.maximum(tail, 0.0), np.minimum(tail, 0.0))
        return np.where(np.abs(tail) < np.abs(z), tail, z)

    def _pooled(
        self,
        idx: IntArray,
        x: FloatArray,
        forecast: FloatArray,
        w: FloatArray,
        sd: FloatArray,
        z: FloatArray,
        warm: npt.NDArray[np.bool_],
        history: FloatArray | None,
        alpha: FloatArray,
        seen: IntArray,
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
        """``z``, or the deviation of the last ``pool`` (or ``long_pool``) points taken together where that says
        more (same side); with the weight, the observed and expected values (per point) and the excess (observed
        minus expected, summed) the chosen judgement rests on, and the number of points it spans.

        A sustained shift of a small series (a few plays a minute) is within the noise minute by minute, and
        would be learnt within minutes; summed over the last minutes — observed against expected counts, their
        variances added, the exact tail of the sums — it is not. The expected values share one error (the
        level's own uncertainty, which does not average out over the pooled points): its variance,
        ``alpha / (2 - alpha)`` of a point's for an EWMA, is added for the sum. For counts the sum's tail is the
        negative binomial with that mean and variance (the Poisson when there is no extra variance): a drop
        from 2 ads a minute to 0.3 over 15 minutes is rare even with the level's uncertainty, which the normal
        approximation (unbounded below zero) would not say.
        """
        binomial = self.noise == "binomial"
        n_w = np.maximum(w, 1.0) if binomial else np.ones_like(w)
        # counts: Poisson noise of the expectation itself, without the point test's floor of 1
        var = (sd * n_w) ** 2 if binomial else self._var[idx] + forecast + (self.relative_floor * forecast) ** 2
        entry = np.where(warm, np.vstack([x * n_w, forecast * n_w, var, n_w, np.sqrt(var), np.ones_like(x)]), 0.0)
        ring_len = self._ring.shape[1]
        head = self._head[idx]
        leaving = [self._ring[:, (head - m) % ring_len, idx] for m in self.pools]  # read before the write
        self._ring[:, head % ring_len, idx] = entry
        self._head[idx] = head + 1
        best_z, best_w = z, w
        best_v, best_e, best_x = x, forecast, x - forecast
        best_p = np.ones_like(x)
        small = np.ones(idx.size, dtype=bool)
        for j, m in enumerate(self.pools):
            sums = self._sums[j]
            sums[:, idx] += entry - np.where(head >= m, leaving[j], 0.0)
            k, e, v, n, sds, pts = sums[:, idx]
            k = np.maximum(k, 0.0)
            # the level's own error: an EWMA's a / (2 - a) of a point's variance, or a mean's 1 / n while it rests on
            # fewer points; for counts also half an event of prior over those points
            young = 1.0 / np.maximum(seen.astype(np.float64), 1.0)
            v = np.maximum(v, 0.0) + np.maximum(alpha / (2.0 - alpha), young) * sds * sds
            if not binomial:
                v = v + 0.5 * (pts * young) * (pts * young)
            zp = (k - e) / np.sqrt(np.maximum(v, 1e-300))
            # longer pools only where the shorter one rests on little (their exact tails are the costly part), and
            # exact tails only where they can count: warm series with 2 points or more; for ratios, where the normal
            # approximation is stronger on the same side (the exact tail only ever says less than it)
            can = small & warm & (pts >= 2)
            if binomial:
                can &= (zp * best_z >= 0) & (np.abs(zp) > np.abs(best_z))
            sel = np.flatnonzero(can)
            if binomial:
                nn = np.maximum(n[sel], 1.0)
                hist = None if history is None else history[sel]
                zp[sel] = self._tail_z(k[sel] / nn, e[sel] / nn, nn, zp[sel], hist)
            else:
                zp[sel] = _negbin_z(np.round(k[sel]), e[sel], v[sel], zp[sel])
            zp = np.where(small, zp, 0.0)
            small = small & ((n if binomial else e) < _LONG_POOL_BELOW)
            stronger = warm & (pts >= 2) & (zp * best_z >= 0) & (np.abs(zp) > np.abs(best_z))
            per = np.maximum(n if binomial else pts, 1.0)
            best_z = np.where(stronger, zp, best_z)
            best_w = np.where(stronger, n, best_w)
            best_v = np.where(stronger, k / per, best_v)
            best_e = np.where(stronger, e / per, best_e)
            best_x = np.where(stronger, k - e, best_x)
            best_p = np.where(stronger, pts, best_p)
        return best_z, best_w, best_v, best_e, best_x, best_p

    def _clear_pool(self, idx: IntArray) -> None:
        """Forget the pooled points of the series ``idx`` (their baseline was replaced)."""
        if idx.size:
            self._ring[:, :, idx] = 0.0
            self._sums[:, :, idx] = 0.0
            self._head[idx] = 0

    def seed(self, ids: IntArray, levels: FloatArray) -> None:
        """Start the series ``ids`` (new to the detector) warm, at the given expected ``levels``.

        For a series whose past is known elsewhere — an entity that has just entered the heavy hitters, whose
        plays were counted in the "other" aggregate until now — so that it is judged at once against what it
        was, instead of learning its first minutes (possibly a surge) as its normal during a warm-up.
        """
        if ids.size == 0:
            return
        self._grow(int(ids.max()) + 1)
        self._level[ids] = np.maximum(levels, 0.0)
        self._trend[ids] = 0.0
        self._var[ids] = 0.0
        self._n[ids] = max(self.warmup, 1)
        self._streak[ids] = 0
        self._ref[ids] = np.nan
        self._clear_pool(ids)

    def step(self, t: int, ids: IntArray, values: FloatArray, weights: FloatArray) -> Detection:
        """Score and learn one time step for the series ``ids``."""
        if ids.size:
            self._grow(int(ids.max()) + 1)
        n = ids.size
        score = np.full(n, np.nan)
        expected = np.full(n, np.nan)
        lower = np.full(n, np.nan)
        upper = np.full(n, np.nan)
        ok = np.isfinite(values) & (weights > 0)
        idx = ids[ok]
        x = values[ok]
        w = weights[ok]
        seen = self._n[idx]
        fresh = seen == 0
        level = np.where(fresh, x, self._level[idx])
        trend = np.where(fresh, 0.0, self._trend[idx])
        forecast = self._feasible(level + self.phi * trend)
        resid = x - forecast
        sd = np.sqrt(self._var[idx] + self._noise_var(forecast, w))
        history = None
        if self.noise == "binomial":  # attempts behind the expected rate: the EWMA's memory of typical weights
            wm = np.where(self._wmean[idx] > 0, self._wmean[idx], w)
            self._wmean[idx] = wm + self.alpha * (w - wm)
            history = wm * (2.0 - self.alpha) / self.alpha
        z = self._tail_z(x, forecast, w, resid / sd, history)
        warm = seen >= self.warmup
        alpha = np.full(x.size, self.alpha)
        if self.noise == "poisson":
            alpha = np.clip(self.alpha * forecast / self.count_ref, min(self.alpha_min, self.alpha), self.alpha)
        elif self.noise == "binomial" and self.rare_gain:
            rare = np.minimum(forecast, 1.0 - forecast) * wm
            alpha = np.clip(self.alpha * rare / self.count_ref, min(self.alpha_min, self.alpha), self.alpha)
        evidence_w, ev_value, ev_expected, ev_excess, ev_points = w, x, forecast, resid, np.ones_like(x)
        if self.pools and self.noise != "relative":  # sums and quantiles of a few events are too lumpy
            z, evidence_w, ev_value, ev_expected, ev_excess, ev_points = self._pooled(
                idx, x, forecast, w, sd, z, warm, history, alpha, seen
            )
        # The end of an anomaly is not an alert: a series whose shift was adopted as its new normal and that
        # now deviates back towards the normal it had before goes back to it (``_ref``), unscored.
        ref = self._ref[idx]
        has_ref = np.isfinite(ref)
        back = (
            warm & has_ref & (np.abs(z) > self.clip) & (z * (ref - forecast) > 0)
            & (np.abs(ev_value - ref) < np.abs(ev_value - forecast))
        )  # fmt: skip
        out_score = np.where(warm & ~back, z * z / (z * z + self.score_half_z**2), np.nan)
        out_score = np.where(back, 0.0, out_score)
        pos = np.flatnonzero(ok)
        score[pos] = out_score
        expected[pos] = np.where(warm, forecast, np.nan)
        lower[pos] = np.where(warm, forecast - self.band_z * sd, np.nan)
        upper[pos] = np.where(warm, forecast + self.band_z * sd, np.nan)
        # Learn: running mean while warming up, clipped Holt update afterwards. A series that deviates — its
        # strongest evidence, alone or pooled over the last minutes, beyond `clip` deviations — does not learn:
        # the level keeps `outlier_gain` of its gain (0: frozen), the trend and the scale learn nothing, until
        # the evidence is back within `release_z` deviations. So an incident keeps its score for its duration,
        # and its end is a return to the baseline, not a change. A deviation that holds on the same side for
        # `adopt_after` points is the explicit decision that the change lasts: the level jumps to where the
        # series now is (a shadow level that kept learning meanwhile), and the old level is remembered for
        # `return_horizon` points as ``_ref`` (see ``back`` above).
        deviating = warm & (np.abs(z) > self.clip)
        streak = self._streak[idx]
        same_side = np.sign(z) == self._side[idx]
        calm = np.abs(z) < self.release_z
        streak = np.where(deviating, np.where((streak > 0) & same_side, streak + 1, 1), np.where(calm, 0, streak))
        streak = np.where(back, 0, streak)
        frozen = streak > 0
        self._side[idx] = np.where(deviating, np.sign(z), self._side[idx])
        gain = np.where(warm, alpha, 1.0 / (seen + 1.0))
        limit = np.where(warm, self.clip * sd, np.inf)
        r = np.clip(resid, -limit, limit)
        r_level = np.clip(resid, -self.level_clip * sd, self.level_clip * sd)  # Huber: bounded influence
        gain = np.where(frozen, gain * self.outlier_gain, gain)
        new_level = forecast + gain * np.where(warm, r_level, resid)
        new_trend = np.where(warm, self.phi * trend + np.where(frozen, 0.0, alpha * self.beta * r), 0.0)
        shadow = np.where(frozen & (self._streak[idx] > 0), self._shadow[idx], forecast)
        shadow = shadow + alpha * (x - shadow)
        adopt = frozen & (streak >= self.adopt_after)
        if adopt.any() or back.any():
            returned = np.where(np.abs(ev_value - forecast) < np.abs(ref - forecast), ev_value, ref)
            new_level = np.where(adopt, shadow, np.where(back, returned, new_level))
            new_trend = np.where(adopt | back, 0.0, new_trend)
            streak = np.where(adopt, 0, streak)
            self._ref[idx] = np.where(adopt, forecast, np.where(back, np.nan, ref))
            self._ref_age[idx] = np.where(adopt, 0, self._ref_age[idx])
            self._clear_pool(idx[adopt | back])
        self._shadow[idx] = shadow
        self._streak[idx] = streak
        self._ref_age[idx] += 1
        expired = np.isfinite(self._ref[idx]) & (self._ref_age[idx] > self.return_horizon)
        if expired.any():
            self._ref[idx[expired]] = np.nan
        self._trend[idx] = new_trend
        self._level[idx] = new_level
        extra = np.maximum(r * r - self._noise_var(forecast, w), 0.0)
        sa = np.where(warm, np.where(frozen, 0.0, self.scale_alpha), 1.0 / (seen + 1.0))
        self._var[idx] = np.where(fresh, 0.0, (1 - sa) * self._var[idx] + sa * extra)
        self._n[idx] = seen + 1
        ev_weight = weights.astype(np.float64, copy=True)
        ev_weight[pos] = evidence_w
        ev_v, ev_e, ev_x = (np.full(n, np.nan) for _ in range(3))
        ev_v[pos], ev_e[pos], ev_x[pos] = ev_value, ev_expected, ev_excess
        ev_p = np.ones(n)
        ev_p[pos] = ev_points
        return Detection(score=score, expected=expected, lower=lower, upper=upper, evidence_weight=ev_weight,
                         evidence_value=ev_v, evidence_expected=ev_e, evidence_excess=ev_x,
                         evidence_points=ev_p)  # fmt: skip

    def state_dict(self) -> dict[str, Any]:
        """Arrays and parameters of every series."""
        return {
            "version": self.version,
            "level": self._level.copy(),
            "trend": self._trend.copy(),
            "var": self._var.copy(),
            "n": self._n.copy(),
            "ring": self._ring.copy(),
            "sums": self._sums.copy(),
            "head": self._head.copy(),
            "wmean": self._wmean.copy(),
            "streak": self._streak.copy(),
            "side": self._side.copy(),
            "shadow": self._shadow.copy(),
            "ref": np.where(np.isnan(self._ref), -np.inf, self._ref),  # -inf: none (NaN never equals itself)
            "ref_age": self._ref_age.copy(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output (versions 1 and 2 too: their pooled sums and anomaly memory start
        afresh)."""
        version = state.get("version")
        if version not in (1, 2, self.version):
            raise ValueError(f"robust detector: state version {version} != {self.version} (or 1, 2)")
        self._level = np.asarray(state["level"], dtype=np.float64)
        self._trend = np.asarray(state["trend"], dtype=np.float64)
        self._var = np.asarray(state["var"], dtype=np.float64)
        self._n = np.asarray(state["n"], dtype=np.int64)
        size = self._level.size
        ring_shape = (_CHANNELS, self._ring.shape[1], size)
        ring = np.asarray(state["ring"], dtype=np.float64) if version == self.version else np.zeros(ring_shape)
        sums = np.asarray(state["sums"], dtype=np.float64) if version == self.version else None
        head = np.asarray(state["head"], dtype=np.int64) if version == self.version else np.zeros(size, dtype=np.int64)
        if ring.shape != ring_shape or sums is None or sums.shape != (len(self.pools), _CHANNELS, size):
            # saved with other pools or an older layout: the pooled sums start afresh
            ring, sums, head = np.zeros(ring_shape), np.zeros((len(self.pools), _CHANNELS, size)), head * 0
        self._ring, self._sums, self._head = ring, sums, head
        self._wmean = np.asarray(state["wmean"], dtype=np.float64) if version != 1 else np.zeros(size)
        fresh = version != self.version
        self._streak = np.zeros(size, dtype=np.int64) if fresh else np.asarray(state["streak"], dtype=np.int64)
        self._side = np.zeros(size) if fresh else np.asarray(state["side"], dtype=np.float64)
        self._shadow = self._level.copy() if fresh else np.asarray(state["shadow"], dtype=np.float64)
        ref = np.full(size, np.nan) if fresh else np.asarray(state["ref"], dtype=np.float64)
        self._ref = np.where(np.isneginf(ref), np.nan, ref)
        self._ref_age = np.zeros(size, dtype=np.int64) if fresh else np.asarray(state["ref_age"], dtype=np.int64)


def _negbin_z(k: FloatArray, mean: FloatArray, var: FloatArray, z: FloatArray) -> FloatArray:
    """The normal quantile of the tail of ``k`` (on the side of ``z``) under the negative binomial with this
    ``mean`` and ``var`` (the Poisson where ``var <= mean``): exact count tails for sums of a few events."""
    mean = np.maximum(mean, 1e-9)
    over = var > mean * (1 + 1e-9)
    r = np.where(over, mean * mean / np.maximum(var - mean, 1e-300), 1.0)
    p = np.where(over, mean / np.maximum(var, 1e-300), 0.5)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore", under="ignore"):
        # P(X <= k) = I_p(r, k + 1); P(X >= k) = I_{1-p}(k, r) for k >= 1
        lower = np.where(over, special.betainc(r, k + 1, p), special.pdtr(k, mean))
        upper = np.where(
            k >= 1, np.where(over, special.betainc(np.maximum(k, 1.0), r, 1 - p), special.pdtrc(k - 1, mean)), 1.0
        )
    lower, upper = np.nan_to_num(lower, nan=1.0), np.nan_to_num(upper, nan=1.0)
    tail = np.where(z > 0, -special.ndtri(np.clip(upper, 1e-300, 1.0)), special.ndtri(np.clip(lower, 1e-300, 1.0)))
    return np.where(z > 0, np.maximum(tail, 0.0), np.minimum(tail, 0.0))
