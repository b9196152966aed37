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

from tunewatch.detect import robust_kernel as rk
from tunewatch.detect.base import Detection, FloatArray, IntArray, VectorDetector
from tunewatch.detect.robust_kernel import CHANNELS as _CHANNELS
from tunewatch.detect.robust_kernel import EXACT_BETABINOM_MAX_N

__all__ = ["EXACT_BETABINOM_MAX_N", "Noise", "RobustLevelDetector", "betabinom_tails"]

Noise = Literal["binomial", "poisson", "relative"]
_NOISE_CODES = {"binomial": rk.NOISE_BINOMIAL, "poisson": rk.NOISE_POISSON, "relative": rk.NOISE_RELATIVE}


def betabinom_tails(k: FloatArray, n: FloatArray, a: FloatArray, b: FloatArray) -> tuple[FloatArray, FloatArray]:
    """``P(X >= k)`` and ``P(X <= k)`` for ``X ~ BetaBinomial(n, a, b)``, row by row (integer ``k``, ``n``).

    SciPy's ``betabinom`` sums the probabilities element by element in Python; here each row's probabilities
    are summed in compiled code (rows up to :data:`EXACT_BETABINOM_MAX_N` attempts), and larger rows use the
    normal approximation with continuity correction.
    """
    f = np.float64
    return rk.betabinom_many(*(np.ascontiguousarray(v, dtype=f) for v in (k, n, a, b)))


class RobustLevelDetector(VectorDetector):
    """Robust Holt-style level detector over many series.

    >>> import numpy as np
    >>> d = RobustLevelDetector(noise="poisson", warmup=5)
    >>> out = [d.update(t, v) for t, v in enumerate([100, 98, 103, 101, 99, 100, 102, 40])]
    >>> round(out[-1].expected), out[-1].score > 0.5, out[6].score < 0.2
    (100, True, True)
    """

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
        #: the same for ratios (``noise="binomial"``), by the typical count of the rarer outcome: a failure rate of
        #: 1 % over 50 plays a minute is one failure every two minutes, and a level that follows each minute
        #: at the full gain falls to zero after a few failure-free minutes, then reads normal minutes as surges
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
        self._ring[:, :, ids] = 0.0
        self._sums[:, :, ids] = 0.0
        self._head[ids] = 0

    def kernel_params(self) -> FloatArray:
        """The parameters as the compiled loop reads them (see :mod:`tunewatch.detect.robust_kernel`)."""
        p = np.zeros(rk.N_PARAMS)
        p[rk.P_ALPHA], p[rk.P_BETA], p[rk.P_PHI] = self.alpha, self.beta, self.phi
        p[rk.P_SCALE_ALPHA], p[rk.P_CLIP], p[rk.P_LEVEL_CLIP] = self.scale_alpha, self.clip, self.level_clip
        p[rk.P_WARMUP], p[rk.P_BAND_Z], p[rk.P_HALF_Z2] = self.warmup, self.band_z, self.score_half_z**2
        p[rk.P_REL_FLOOR], p[rk.P_OUTLIER_GAIN] = self.relative_floor, self.outlier_gain
        p[rk.P_RELEASE_Z] = self.release_z
        p[rk.P_ADOPT_AFTER], p[rk.P_RETURN_HORIZON] = self.adopt_after, self.return_horizon
        p[rk.P_COUNT_REF], p[rk.P_ALPHA_LOW] = self.count_ref, min(self.alpha_min, self.alpha)
        p[rk.P_RARE_GAIN] = float(self.rare_gain)
        return p

    def step(self, t: int, ids: IntArray, values: FloatArray, weights: FloatArray) -> Detection:
        """Score and learn one time step for the series ``ids`` (a series given twice is stepped twice, in order)."""
        return self.step_many(ids, values, weights, np.array([0, ids.size], dtype=np.int64))

    def step_many(self, ids: IntArray, values: FloatArray, weights: FloatArray, starts: IntArray) -> Detection:
        """Score and learn several time steps in one call: step ``i`` is the points ``starts[i]:starts[i + 1]``,
        in time order. Every point is scored and learnt in turn (each touches only its own series), so this gives
        the results of one :meth:`step` per time step."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if ids.size:
            self._grow(int(ids.max()) + 1)
            if ids.min() < 0:
                raise ValueError(f"robust detector: series ids must be >= 0, got {int(ids.min())}")
        out = np.empty((9, ids.size))
        rk.robust_points(
            self.kernel_params(), _NOISE_CODES[self.noise], np.asarray(self.pools, dtype=np.int64),
            self._level, self._trend, self._var, self._n, self._ring, self._sums, self._head, self._wmean,
            self._streak, self._side, self._shadow, self._ref, self._ref_age,
            ids, np.ascontiguousarray(values, dtype=np.float64), np.ascontiguousarray(weights, dtype=np.float64), out,
        )  # fmt: skip
        return Detection(score=out[0], expected=out[1], lower=out[2], upper=out[3], evidence_weight=out[4],
                         evidence_value=out[5], evidence_expected=out[6], evidence_excess=out[7],
                         evidence_points=out[8])  # fmt: skip

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
