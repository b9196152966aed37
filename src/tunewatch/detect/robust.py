"""Robust level detector: damped Holt level/trend with a clipped update and a learned residual scale.

For every series it forecasts the next value (level + trend), measures the residual against a noise model —
the learned extra variance plus the sampling noise the point's weight implies (binomial for ratios, Poisson
for counts, relative for sums and quantiles) — and learns from a residual clipped at ``clip`` standard
deviations, so an anomaly barely moves the baseline. All arithmetic is on arrays indexed by series id.

For counts and ratios of counts the normal approximation badly understates how often small counts stray
(2 failures in 15 attempts against an expected 0.09 is not "6 sigma"): there the deviation is also measured
by the exact binomial/Poisson tail probability, turned into its normal quantile, and the smaller of the two
deviations counts. An expected rate learnt from few attempts is itself uncertain (no failure in 400 attempts
does not make failures impossible): where the binomial tail says much, the beta-binomial tail of that
uncertainty is used instead.

For counts and ratios the last ``pool`` points are also judged together (observed against expected sums, the
level's own error added once): a sustained shift of a small series — a few plays a minute — stays within the
noise minute by minute, but not over five minutes. The stronger of the two deviations on the same side
counts, and the detection reports the weight it rests on (``evidence_weight``) for the rules' volume guards.

Score: ``z² / (z² + k²)`` with ``k = score_half_z`` (0.5 at ``|z| = k``, 0.8 at ``2k``); band: forecast ±
``band_z`` standard deviations.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy import special

from tunewatch.detect.base import Detection, FloatArray, IntArray, VectorDetector

Noise = Literal["binomial", "poisson", "relative"]


#: Beta-binomial tails are summed exactly up to this many attempts; beyond, the normal approximation with the
#: beta-binomial's variance is accurate (and a sum over every count would be slow).
EXACT_BETABINOM_MAX_N = 20_000
_CELLS_PER_CHUNK = 1 << 22  # rows are summed in chunks of at most this many (row, count) cells


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


class RobustLevelDetector(VectorDetector):
    """Robust Holt-style level detector over many series.

    >>> import numpy as np
    >>> d = RobustLevelDetector(noise="poisson", warmup=5)
    >>> out = [d.update(t, v) for t, v in enumerate([100, 98, 103, 101, 99, 100, 102, 40])]
    >>> round(out[-1].expected), out[-1].score > 0.5, out[6].score < 0.2
    (100, True, True)
    """

    name = "robust"
    version = 2  # 2: pooled evidence (last points, typical weight)

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
        outlier_gain: float = 0.3,
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
        if pool < 0:
            raise ValueError(f"pool: must be >= 0, got {pool}")
        self.pool = pool
        if not 0.0 <= outlier_gain <= 1.0:
            raise ValueError(f"outlier_gain: must be in [0, 1], got {outlier_gain}")
        self.outlier_gain = outlier_gain
        self._level = np.zeros(0)
        self._trend = np.zeros(0)
        self._var = np.zeros(0)  # learned extra variance beyond sampling noise
        self._n = np.zeros(0, dtype=np.int64)
        # the last ``pool`` scored points of each series, in count units: observed, expected, variance, weight,
        # standard deviation (see _pooled)
        self._ring = np.zeros((5, max(pool, 1), 0))
        self._head = np.zeros(0, dtype=np.int64)
        self._wmean = np.zeros(0)  # typical weight (attempts per point) of each series

    def _grow(self, size: int) -> None:
        if size > self._level.size:
            extra = size - self._level.size
            self._level = np.concatenate([self._level, np.zeros(extra)])
            self._trend = np.concatenate([self._trend, np.zeros(extra)])
            self._var = np.concatenate([self._var, np.zeros(extra)])
            self._n = np.concatenate([self._n, np.zeros(extra, dtype=np.int64)])
            self._ring = np.concatenate([self._ring, np.zeros((*self._ring.shape[:2], extra))], axis=2)
            self._head = np.concatenate([self._head, np.zeros(extra, dtype=np.int64)])
            self._wmean = np.concatenate([self._wmean, np.zeros(extra)])

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
    ) -> tuple[FloatArray, FloatArray]:
        """``z``, or the deviation of the last ``pool`` points taken together where that says more (same side).

        A sustained shift of a small series (a few plays a minute) is within the noise minute by minute, and
        the level would learn it within minutes; summed over the last ``pool`` minutes — observed against
        expected counts, their variances added, the exact binomial/Poisson tail of the sums — it is not.
        The expected values share one error (the level's own uncertainty, which does not average out over
        the pooled points): its variance, ``alpha / (2 - alpha)`` of a point's for an EWMA, is added for the sum.
        """
        n_w = np.maximum(w, 1.0) if self.noise == "binomial" else np.ones_like(w)
        obs, exp_, var = x * n_w, forecast * n_w, (sd * n_w) ** 2
        slot = self._head[idx] % self.pool
        self._ring[:, slot, idx] = np.where(warm, np.vstack([obs, exp_, var, n_w, sd * n_w]), 0.0)
        self._head[idx] += 1
        k, e, v, n, sds = self._ring[:, :, idx].sum(axis=1)
        v = v + self.alpha / (2.0 - self.alpha) * sds * sds
        zp = (k - e) / np.sqrt(np.maximum(v, 1e-300))
        if self.noise == "binomial":
            nn = np.maximum(n, 1.0)
            zp = self._tail_z(k / nn, e / nn, nn, zp, history)
        elif self.noise == "poisson":
            zp = self._tail_z(k, e, n, zp)
        stronger = warm & (zp * z > 0) & (np.abs(zp) > np.abs(z))
        return np.where(stronger, zp, z), np.where(stronger, n, w)

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
        evidence_w = w
        if self.pool > 1 and self.noise != "relative":  # sums and quantiles of a few events are too lumpy
            z, evidence_w = self._pooled(idx, x, forecast, w, sd, z, warm, history)
        out_score = np.where(warm, z * z / (z * z + self.score_half_z**2), np.nan)
        pos = np.flatnonzero(ok)
        score[pos] = out_score
        expected[pos] = np.where(warm, forecast, np.nan)
        lower[pos] = np.where(warm, forecast - self.band_z * sd, np.nan)
        upper[pos] = np.where(warm, forecast + self.band_z * sd, np.nan)
        # learn: running mean while warming up, clipped Holt update afterwards. An outlier (|z| > clip, alone or
        # with the last minutes) moves the level by at most `level_clip` deviations x alpha x outlier_gain, and
        # teaches neither the trend nor the scale, so a sustained anomaly keeps its score for its duration
        # instead of becoming the new normal within minutes.
        gain = np.where(warm, self.alpha, 1.0 / (seen + 1.0))
        limit = np.where(warm, self.clip * sd, np.inf)
        r = np.clip(resid, -limit, limit)
        outlier = warm & (np.abs(z) > self.clip)
        r_level = np.clip(resid, -self.level_clip * sd, self.level_clip * sd)  # Huber: bounded influence
        gain = np.where(outlier, gain * self.outlier_gain, gain)
        new_level = forecast + gain * np.where(warm, r_level, resid)
        self._trend[idx] = np.where(warm, self.phi * trend + np.where(outlier, 0.0, self.alpha * self.beta * r), 0.0)
        self._level[idx] = new_level
        extra = np.maximum(r * r - self._noise_var(forecast, w), 0.0)
        sa = np.where(warm, np.where(outlier, 0.0, self.scale_alpha), 1.0 / (seen + 1.0))
        self._var[idx] = np.where(fresh, 0.0, (1 - sa) * self._var[idx] + sa * extra)
        self._n[idx] = seen + 1
        ev_weight = weights.astype(np.float64, copy=True)
        ev_weight[pos] = evidence_w
        return Detection(score=score, expected=expected, lower=lower, upper=upper, evidence_weight=ev_weight)

    def state_dict(self) -> dict[str, Any]:
        """Arrays and parameters of every series."""
        return {
            "version": self.version,
            "level": self._level.copy(),
            "trend": self._trend.copy(),
            "var": self._var.copy(),
            "n": self._n.copy(),
            "ring": self._ring.copy(),
            "head": self._head.copy(),
            "wmean": self._wmean.copy(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        version = state.get("version")
        if version not in (1, self.version):
            raise ValueError(f"robust detector: state version {version} != {self.version} (or 1)")
        self._level = np.asarray(state["level"], dtype=np.float64)
        self._trend = np.asarray(state["trend"], dtype=np.float64)
        self._var = np.asarray(state["var"], dtype=np.float64)
        self._n = np.asarray(state["n"], dtype=np.int64)
        size = self._level.size
        ring = np.asarray(state["ring"], dtype=np.float64) if version == 2 else np.zeros((5, max(self.pool, 1), size))
        if ring.shape != (5, max(self.pool, 1), size):  # saved with another pool: start the pooled sums afresh
            ring = np.zeros((5, max(self.pool, 1), size))
        self._ring = ring
        # version 1 had no pooled sums: they fill within `pool` points, the typical weight at the next point
        self._head = np.asarray(state["head"], dtype=np.int64) if version == 2 else np.zeros(size, dtype=np.int64)
        self._wmean = np.asarray(state["wmean"], dtype=np.float64) if version == 2 else np.zeros(size)
