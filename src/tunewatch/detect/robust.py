"""Robust level detector: damped Holt level/trend with a clipped update and a learned residual scale.

For every series it forecasts the next value (level + trend), measures the residual against a noise model —
the learned extra variance plus the sampling noise the point's weight implies (binomial for ratios, Poisson
for counts, relative for sums and quantiles) — and learns from a residual clipped at ``clip`` standard
deviations, so an anomaly barely moves the baseline. All arithmetic is on arrays indexed by series id.

For counts and ratios of counts the normal approximation badly understates how often small counts stray
(2 failures in 15 attempts against an expected 0.09 is not "6 sigma"): there the deviation is also measured
by the exact binomial/Poisson tail probability, turned into its normal quantile, and the smaller of the two
deviations counts.

Score: ``z² / (z² + k²)`` with ``k = score_half_z`` (0.5 at ``|z| = k``, 0.8 at ``2k``); band: forecast ±
``band_z`` standard deviations.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from scipy import special

from tunewatch.detect.base import Detection, FloatArray, IntArray, VectorDetector

Noise = Literal["binomial", "poisson", "relative"]


class RobustLevelDetector(VectorDetector):
    """Robust Holt-style level detector over many series.

    >>> import numpy as np
    >>> d = RobustLevelDetector(noise="poisson", warmup=5)
    >>> out = [d.update(t, v) for t, v in enumerate([100, 98, 103, 101, 99, 100, 102, 40])]
    >>> round(out[-1].expected), out[-1].score > 0.5, out[6].score < 0.2
    (100, True, True)
    """

    name = "robust"
    version = 1

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
        self._level = np.zeros(0)
        self._trend = np.zeros(0)
        self._var = np.zeros(0)  # learned extra variance beyond sampling noise
        self._n = np.zeros(0, dtype=np.int64)

    def _grow(self, size: int) -> None:
        if size > self._level.size:
            extra = size - self._level.size
            self._level = np.concatenate([self._level, np.zeros(extra)])
            self._trend = np.concatenate([self._trend, np.zeros(extra)])
            self._var = np.concatenate([self._var, np.zeros(extra)])
            self._n = np.concatenate([self._n, np.zeros(extra, dtype=np.int64)])

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

    def _tail_z(self, x: FloatArray, forecast: FloatArray, w: FloatArray, z: FloatArray) -> FloatArray:
        """``z`` shrunk to the normal quantile of the exact count tail where that is less extreme."""
        if self.noise == "relative" or z.size == 0:
            return z
        if self.noise == "binomial":
            n = np.maximum(np.round(w), 1.0)
            k = np.clip(np.round(x * n), 0, n)
            p = np.clip(forecast, 1e-6, 1 - 1e-6)
            # binomial tails through the regularised incomplete beta function (accepts float arguments)
            upper = np.where(k >= 1, special.betainc(np.maximum(k, 1.0), n - k + 1, p), 1.0)  # P(X >= k)
            lower = np.where(k < n, special.betainc(np.maximum(n - k, 1.0), k + 1, 1 - p), 1.0)  # P(X <= k)
        else:
            k = np.maximum(np.round(x), 0)
            lam = np.maximum(forecast, 1e-6)
            upper = np.where(k > 0, special.pdtrc(k - 1, lam), 1.0)
            lower = special.pdtr(k, lam)
        tail = np.where(z > 0, special.ndtri(1 - np.clip(upper, 1e-300, 1.0)), special.ndtri(np.clip(lower, 1e-300, 1)))
        tail = np.where(z > 0, np.maximum(tail, 0.0), np.minimum(tail, 0.0))
        return np.where(np.abs(tail) < np.abs(z), tail, z)

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
        z = self._tail_z(x, forecast, w, resid / sd)
        warm = seen >= self.warmup
        out_score = np.where(warm, z * z / (z * z + self.score_half_z**2), np.nan)
        pos = np.flatnonzero(ok)
        score[pos] = out_score
        expected[pos] = np.where(warm, forecast, np.nan)
        lower[pos] = np.where(warm, forecast - self.band_z * sd, np.nan)
        upper[pos] = np.where(warm, forecast + self.band_z * sd, np.nan)
        # learn: running mean while warming up, clipped Holt update afterwards. An outlier (|z| > clip) moves
        # the level by at most `clip` deviations x alpha, and teaches neither the trend nor the scale, so a
        # sustained anomaly keeps its score for minutes instead of widening its own band.
        gain = np.where(warm, self.alpha, 1.0 / (seen + 1.0))
        limit = np.where(warm, self.clip * sd, np.inf)
        r = np.clip(resid, -limit, limit)
        outlier = warm & (np.abs(z) > self.clip)
        r_level = np.clip(resid, -self.level_clip * sd, self.level_clip * sd)  # Huber: bounded influence
        new_level = forecast + gain * np.where(warm, r_level, resid)
        self._trend[idx] = np.where(warm, self.phi * trend + np.where(outlier, 0.0, self.alpha * self.beta * r), 0.0)
        self._level[idx] = new_level
        extra = np.maximum(r * r - self._noise_var(forecast, w), 0.0)
        sa = np.where(warm, np.where(outlier, 0.0, self.scale_alpha), 1.0 / (seen + 1.0))
        self._var[idx] = np.where(fresh, 0.0, (1 - sa) * self._var[idx] + sa * extra)
        self._n[idx] = seen + 1
        return Detection(score=score, expected=expected, lower=lower, upper=upper)

    def state_dict(self) -> dict[str, Any]:
        """Arrays and parameters of every series."""
        return {
            "version": self.version,
            "level": self._level.copy(),
            "trend": self._trend.copy(),
            "var": self._var.copy(),
            "n": self._n.copy(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        if state.get("version") != self.version:
            raise ValueError(f"state version {state.get('version')} != {self.version}")
        self._level = np.asarray(state["level"], dtype=np.float64)
        self._trend = np.asarray(state["trend"], dtype=np.float64)
        self._var = np.asarray(state["var"], dtype=np.float64)
        self._n = np.asarray(state["n"], dtype=np.int64)
