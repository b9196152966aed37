"""A :class:`VectorDetector` over the compiled point kernel: many-series steps, one-series chunks, streaming.

The state of every series is one row of a float64 matrix (``HEADER`` values, 352 bytes, plus 8 bytes per profile,
surprise-tail and ring slot the settings ask for, and the opt-in shape channel's block at the end), so a checkpoint
is one array plus the parameters.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar, Literal

import numpy as np

from tunewatch.detect import kernel as k
from tunewatch.detect.base import Detection, FloatArray, IntArray, PointDetection, VectorDetector
from tunewatch.detect.shape import shape_width

Noise = Literal["relative", "poisson", "binomial"]
_NOISE_CODES = {"relative": k.NOISE_RELATIVE, "poisson": k.NOISE_POISSON, "binomial": k.NOISE_BINOMIAL}
DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS


@dataclass(frozen=True, slots=True)
class KernelParams:
    """Settings of the kernel (see :mod:`tunewatch.detect.kernel`); one configuration serves every series.

    >>> p = KernelParams(noise="poisson", warmup=10)
    >>> p.warmup, p.noise, p.vector().dtype
    (10, 'poisson', dtype('float64'))
    """

    noise: Noise = "relative"
    alpha: float = 0.05  # level gain
    scale_alpha: float = 0.02  # scale (MAD) gain
    clip: float = 2.0  # Huber clip of the level update, in standard deviations
    warmup: int = 30  # points before scoring
    cusum_k: float = 0.5  # CUSUM slack, in standard deviations
    cusum_h: float = 12.0  # CUSUM alarm level
    cusum_z: float = 6.0  # evidence (as |z|) of a CUSUM at its alarm level (none with ``tail_bins``: it only re-bases)
    decay: float = 0.99  # per-point decay of the episode peak
    damp: float = 0.5  # factor on evidence that does not beat the episode peak
    relative_floor: float = 0.0  # noise floor as a fraction of the level
    period_ms: int = DAY_MS  # seasonal period
    bins: int = 0  # seasonal profile slots (0: no seasonal model)
    gamma: float = 0.1  # seasonal gain
    tz_offset_ms: int = 0  # local time = UTC + offset (the market's)
    band_z: float = 4.0  # band half-width, and the |z| above which a point is anomalous
    score_k: float = 4.0  # score = e² / (e² + k²) for evidence e (0.5 at e = k)
    fast: float = 0.3  # gain of the fast level used to re-base after a change point
    use_level: float = 1.0  # weight of the point residual in the evidence
    use_cusum: float = 1.0  # weight of the CUSUM in the evidence
    mad_cap: float = 4.0  # residuals are capped at this many deviations when learning the scale
    spread_frac: float = 0.05  # scale floor as a fraction of the series' long-run spread
    spread_alpha: float = 0.005  # gain of the long-run mean and spread
    cal_alpha: float = 0.002  # gain of the long-run mean and variance of the series' own surprise
    cal_short: float = 0.2  # gain of the short-run surprise average
    cal: float = 1.0  # weight of the calibrated evidence (0: raw |z|)
    cusum_ref: float = 0.005  # gain of the CUSUM's slow reference level
    slevel_gain: float = 0.1  # the seasonal model's level gain, as a fraction of ``alpha``
    episode_decay: float = 0.999  # per-point decay of the count of recent episodes
    episode_weight: float = 0.0  # evidence is divided by 1 + weight x recent episodes
    freeze_scale: bool = False  # residuals beyond ``mad_cap`` deviations do not teach the scale at all
    weekly_period_ms: int = WEEK_MS  # period of the second (weekly) seasonal profile
    weekly_bins: int = 0  # weekly profile slots (0: no weekly model)
    tail_bins: int = 0  # slots of each histogram of past |z|, up and down (0: calibrate by mean and variance)
    tail_width: float = 0.5  # width of a slot, in log(1 + evidence)
    tail_decay: float = 0.9995  # per-point decay of the histogram
    tail_prior: float = 30.0  # points of noise the histogram starts with
    tail_heavy: float = 0.01  # fraction of that noise that is Cauchy (bounds the surprise of one point)
    tail_decay_long: float = 0.0  # decay of second, longer-memory histograms; surprise is the lesser (0: off)
    trend: float = 0.0  # slope gain of the damped Holt trend model, as a fraction of ``alpha`` (0: no trend model)
    trend_damp: float = 0.98  # per-interval damping of the slope in the trend model's forecast
    auto_count: bool = False  # with noise "relative": Poisson noise for series of non-negative integers only
    period_ring: int = 0  # recent block means searched for a period of up to half as many blocks (0: no search)
    period_block: int = 2  # points per block of the period search's ring
    run_learn: float = 0.0  # anomalous-run points beyond this many teach the surprise tails less (0: all fully)
    episode_gap: float = 0.0  # intervals without a deviation beyond ``band_z`` that end an episode (0: never)
    auto_ratio: bool = False  # with noise "relative": binomial noise for series of proportions (in [0, 1], some 0)
    #: evidence above which a point that beats the episode peak counts as an episode for ``episode_weight``, in
    #: the evidence's units: decades of surprise with ``tail_bins``, the (calibrated) |z| without. Until version 6
    #: this was ``band_z``'s value; with the tails that compares decades with a |z|, and counting |z| > ``band_z``
    #: instead measured far worse (docs/benchmarks.md, issue 12), so the value is kept under its own name.
    episode_evidence: float = 4.0
    #: the shape channel (:mod:`tunewatch.detect.shape`): blocks of the residual window (0: off), points per
    #: block, prototypes kept, the vigilance radius (mean absolute difference of the features), the weight of its
    #: evidence against the point channel's, and the memory of its new-category rate
    shape_blocks: int = 0
    shape_block: int = 2
    shape_protos: int = 32
    shape_vigilance: float = 0.5
    shape_weight: float = 1.0
    shape_decay: float = 0.9995
    #: the flatline channel: the memory (per-point decay) of the series' rate of exact repeats of a non-zero value
    #: (0: off), and the most a run of repeats can say, in decades (a run at the cap is reported once, then damped)
    quiet_decay: float = 0.0
    quiet_cap: float = 4.0

    def vector(self) -> FloatArray:
        """The parameter vector the kernel reads."""
        p = np.zeros(k.N_PARAMS + k.PRIOR_SIZE)
        p[k.P_ALPHA], p[k.P_SCALE_ALPHA], p[k.P_CLIP] = self.alpha, self.scale_alpha, self.clip
        p[k.P_WARMUP] = self.warmup
        p[k.P_CUSUM_K], p[k.P_CUSUM_H], p[k.P_CUSUM_Z] = self.cusum_k, self.cusum_h, self.cusum_z
        p[k.P_DECAY], p[k.P_DAMP] = self.decay, self.damp
        p[k.P_NOISE], p[k.P_REL_FLOOR] = _NOISE_CODES[self.noise], self.relative_floor
        p[k.P_PERIOD_MS], p[k.P_BINS], p[k.P_GAMMA], p[k.P_TZ_MS] = (
            self.period_ms,
            self.bins,
            self.gamma,
            self.tz_offset_ms,
        )
        p[k.P_BAND_Z], p[k.P_SCORE_K], p[k.P_FAST] = self.band_z, self.score_k, self.fast
        p[k.P_USE_LEVEL], p[k.P_USE_CUSUM], p[k.P_MAD_CAP] = self.use_level, self.use_cusum, self.mad_cap
        p[k.P_SPREAD_FRAC], p[k.P_SPREAD_ALPHA] = self.spread_frac, self.spread_alpha
        p[k.P_CAL_ALPHA], p[k.P_CAL_SHORT], p[k.P_CAL] = self.cal_alpha, self.cal_short, self.cal
        p[k.P_CUSUM_REF], p[k.P_SLEVEL_GAIN] = self.cusum_ref, self.slevel_gain
        p[k.P_EPIS_DECAY], p[k.P_EPIS_WEIGHT] = self.episode_decay, self.episode_weight
        p[k.P_FREEZE] = float(self.freeze_scale)
        p[k.P_WPERIOD_MS], p[k.P_WBINS] = self.weekly_period_ms, self.weekly_bins
        p[k.P_TAIL_BINS], p[k.P_TAIL_WIDTH] = self.tail_bins, self.tail_width
        p[k.P_TAIL_DECAY], p[k.P_TAIL_PRIOR], p[k.P_TAIL_HEAVY] = self.tail_decay, self.tail_prior, self.tail_heavy
        p[k.P_TAIL_DECAY_LONG] = self.tail_decay_long
        p[k.P_TREND], p[k.P_TREND_DAMP] = self.trend, self.trend_damp
        p[k.P_AUTO_COUNT] = float(self.auto_count)
        p[k.P_RING], p[k.P_RING_BLOCK] = self.period_ring, self.period_block
        p[k.P_RUN_LEARN] = self.run_learn
        p[k.P_EPISODE_GAP] = self.episode_gap
        p[k.P_AUTO_RATIO] = float(self.auto_ratio)
        p[k.P_EPISODE_EVIDENCE] = self.episode_evidence
        p[k.P_SHAPE_BLOCKS], p[k.P_SHAPE_BLOCK], p[k.P_SHAPE_PROTOS] = (
            self.shape_blocks,
            self.shape_block,
            self.shape_protos,
        )
        p[k.P_SHAPE_VIGILANCE], p[k.P_SHAPE_WEIGHT] = self.shape_vigilance, self.shape_weight
        p[k.P_SHAPE_DECAY] = self.shape_decay
        p[k.P_QUIET_DECAY], p[k.P_QUIET_CAP] = self.quiet_decay, self.quiet_cap
        # reciprocals the kernel multiplies by (a division per point costs more)
        p[k.P_TAIL_GROW] = 1.0 / self.tail_decay if self.tail_decay > 0.0 else 0.0
        p[k.P_TAIL_GROW_LONG] = 1.0 / self.tail_decay_long if self.tail_decay_long > 0.0 else 0.0
        p[k.P_TAIL_INV_WIDTH] = 1.0 / self.tail_width if self.tail_width > 0.0 else 0.0
        p[k.P_INV_PERIOD] = 1.0 / self.period_ms if self.period_ms > 0 else 0.0
        p[k.P_INV_WPERIOD] = 1.0 / self.weekly_period_ms if self.weekly_period_ms > 0 else 0.0
        p[k.P_PRIOR_TABLE :] = k.prior_table(self.tail_heavy)
        return p

    def validate(self) -> None:
        """Raise ValueError naming the first setting out of range."""
        if self.noise not in _NOISE_CODES:
            raise ValueError(f"noise: {self.noise!r} is not one of {', '.join(_NOISE_CODES)}")
        for name in (
            "alpha",
            "scale_alpha",
            "gamma",
            "fast",
            "spread_alpha",
            "cal_alpha",
            "cal_short",
            "cusum_ref",
            "slevel_gain",
        ):
            v = getattr(self, name)
            if not 0.0 < v <= 1.0:
                raise ValueError(f"{name}: {v} must be in (0, 1]")
        if not 0.0 < self.decay <= 1.0 or not 0.0 <= self.damp <= 1.0 or not 0.0 < self.episode_decay <= 1.0:
            raise ValueError("decay and episode_decay must be in (0, 1], damp in [0, 1]")
        if self.episode_weight < 0.0:
            raise ValueError(f"episode_weight: {self.episode_weight} must be >= 0")
        if self.episode_evidence < 0.0:
            raise ValueError(f"episode_evidence: {self.episode_evidence} must be >= 0")
        if self.bins < 0 or (self.bins and self.period_ms <= 0):
            raise ValueError(f"bins: {self.bins} needs a positive period_ms (got {self.period_ms})")
        if self.weekly_bins < 0 or (self.weekly_bins and self.weekly_period_ms <= 0):
            raise ValueError(
                f"weekly_bins: {self.weekly_bins} needs a positive weekly_period_ms (got {self.weekly_period_ms})"
            )
        if self.tail_bins < 0 or self.tail_width <= 0.0 or self.tail_prior <= 0.0:
            raise ValueError("tail_bins must be >= 0, tail_width and tail_prior positive")
        if self.tail_bins and self.use_level <= 0.0:
            raise ValueError("tail_bins: the surprise tails calibrate the point evidence, which use_level 0 turns off")
        if not 0.0 < self.tail_decay <= 1.0 or not 0.0 <= self.tail_decay_long <= 1.0:
            raise ValueError("tail_decay must be in (0, 1], tail_decay_long in [0, 1] (0: off)")
        if not 0.0 <= self.tail_heavy <= 1.0:
            raise ValueError(f"tail_heavy: {self.tail_heavy} must be in [0, 1]")
        if not 0.0 <= self.trend <= 1.0 or not 0.0 < self.trend_damp <= 1.0:
            raise ValueError("trend must be in [0, 1] (0: off), trend_damp in (0, 1]")
        if self.period_ring < 0 or (0 < self.period_ring < 16):
            raise ValueError(f"period_ring: {self.period_ring} must be 0 (off) or at least 16")
        if self.period_block < 1:
            raise ValueError(f"period_block: {self.period_block} must be at least 1")
        if self.shape_blocks < 0 or self.shape_block < 1 or self.shape_protos < 1:
            raise ValueError("shape_blocks must be >= 0 (0: off), shape_block and shape_protos at least 1")
        if self.shape_blocks and not (self.shape_vigilance > 0.0 and self.shape_weight >= 0.0):
            raise ValueError("shape_vigilance must be positive and shape_weight >= 0")
        if not 0.0 < self.shape_decay <= 1.0:
            raise ValueError(f"shape_decay: {self.shape_decay} must be in (0, 1]")
        if not 0.0 <= self.quiet_decay < 1.0 or self.quiet_cap <= 0.0:
            raise ValueError("quiet_decay must be in [0, 1) (0: off), quiet_cap positive")
        if self.cusum_h <= 0 or self.score_k <= 0 or self.warmup < 1:
            raise ValueError("cusum_h and score_k must be positive, warmup at least 1")


class KernelDetector(VectorDetector):
    """Vectorised detector whose per-point arithmetic is :func:`tunewatch.detect.kernel.point`.

    >>> det = KernelDetector(warmup=5)
    >>> d = det.chunk(np.arange(8) * 60_000, np.array([100, 98, 103, 101, 99, 100, 102, 40.0]))
    >>> bool(d.score[-1] > 0.5), det.series_count()
    (True, 1)
    """

    name = "kernel"
    #: 2: weekly profile; 3: trend model, count detection; 4: quiet time (episode gap); 5: proportions;
    #: 6: the surprise tails calibrate the point evidence only (the CUSUM's tails removed); 7: ``episode_evidence``
    #: (the episode count's threshold, which was ``band_z``'s value) and the model named for every scored point;
    #: 8: the opt-in shape channel's settings (its block at the end of the row, none when it is off); 9: the
    #: flatline channel (``quiet_decay``, ``quiet_cap``; five header values: the last value, the current run's
    #: evidence, the decayed repeat counts and the longest recent run)
    version = 9
    #: Settings that define the detector kind (subclasses fix them; constructor arguments override the rest).
    fixed: ClassVar[dict[str, Any]] = {}

    def __init__(self, **settings: Any) -> None:
        clash = set(settings) & set(self.fixed)
        if clash:
            raise ValueError(f"{self.name}: setting(s) {', '.join(sorted(clash))} are fixed for this detector")
        known = {f.name for f in fields(KernelParams)}
        unknown = set(settings) - known
        if unknown:
            raise ValueError(f"{self.name}: unknown setting(s) {', '.join(sorted(unknown))}")
        self.params = KernelParams(**{**settings, **self.fixed})
        self.params.validate()
        self._p = self.params.vector()
        ring = self.params.period_ring
        shape = shape_width(self.params.shape_blocks, self.params.shape_block, self.params.shape_protos)
        self.width = (
            k.HEADER + self.params.bins + self.params.weekly_bins + self._tail_width() + ring + ring // 2 + shape
        )
        self._states = np.zeros((0, self.width))

    def _tail_width(self) -> int:
        """Slots of the surprise histograms of the point evidence: up and down, for one or two memories."""
        memories = 2 if self.params.tail_decay_long > 0.0 else 1
        return 2 * self.params.tail_bins * memories

    @property
    def bytes_per_series(self) -> int:
        """Memory of one series' state."""
        return self.width * 8

    def _grow(self, size: int) -> None:
        if size > self._states.shape[0]:
            extra = np.zeros((max(size, 2 * self._states.shape[0]) - self._states.shape[0], self.width))
            self._states = np.concatenate([self._states, extra])

    @staticmethod
    def _detection(out: np.ndarray) -> Detection:
        """Column views of the kernel's output rows (no copies)."""
        return Detection(
            score=out[:, k.O_SCORE],
            expected=out[:, k.O_EXPECTED],
            lower=out[:, k.O_LOWER],
            upper=out[:, k.O_UPPER],
            source=out[:, k.O_SOURCE].astype(np.int64),
            run_ms=out[:, k.O_RUN_MS],
        )

    def step(self, t: int, ids: IntArray, values: FloatArray, weights: FloatArray) -> Detection:
        """Score and learn one time step of the series ``ids`` (ids must be distinct)."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if ids.size:
            if int(ids.min()) < 0:
                raise ValueError("ids: series ids must be non-negative")
            self._grow(int(ids.max()) + 1)
        out = np.empty((ids.size, k.OUT_WIDTH))
        k.run_many(
            self._states,
            self._p,
            float(t),
            ids,
            np.ascontiguousarray(values, dtype=np.float64),
            np.ascontiguousarray(weights, dtype=np.float64),
            out,
        )
        return self._detection(out)

    def chunk(self, t: np.ndarray, values: FloatArray, weights: FloatArray | None = None, series: int = 0) -> Detection:
        """Score and learn consecutive points of one series (times in epoch ms, ascending)."""
        if series < 0:
            raise ValueError("series: must be non-negative")
        self._grow(series + 1)
        xs = np.ascontiguousarray(values, dtype=np.float64)
        ws = np.ones(xs.size) if weights is None else np.ascontiguousarray(weights, dtype=np.float64)
        ts = np.ascontiguousarray(t, dtype=np.float64)
        if not ts.size == xs.size == ws.size:
            raise ValueError(f"chunk: {ts.size} times, {xs.size} values and {ws.size} weights differ in length")
        out = np.empty((xs.size, k.OUT_WIDTH))
        row = self._states[series]  # a view: the kernel updates the state in place
        k.run_chunk(row, self._p, ts, xs, ws, out)
        return self._detection(out)

    def update(self, t: int, value: float, weight: float = 1.0, series: int = 0) -> PointDetection:
        """Streaming form: score and learn one point of one series."""
        d = self.chunk(np.array([t]), np.array([value]), np.array([weight]), series)
        return PointDetection(
            float(d.score[0]), float(d.expected[0]), float(d.lower[0]), float(d.upper[0]),
            source=k.SOURCE_NAMES[int(d.source[0])] if d.source is not None else "none",
            run_ms=float(d.run_ms[0]) if d.run_ms is not None else 0.0,
        )  # fmt: skip

    def series_count(self) -> int:
        """Number of series slots allocated."""
        return int(self._states.shape[0])

    def state_dict(self) -> dict[str, Any]:
        """``{"version", "kind", "params", "states"}``: the settings and one float64 row per series."""
        return {
            "version": self.version,
            "kind": self.name,
            "params": asdict(self.params),
            "states": self._states.copy(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output of the same kind, version and settings."""
        if state.get("version") == 3 and state.get("kind") == self.name:
            state = _from_version_3(state)
        if state.get("version") == 4 and state.get("kind") == self.name:
            state = _from_version_4(state)
        if state.get("version") == 5 and state.get("kind") == self.name:
            state = _from_version_5(state)
        if state.get("version") == 6 and state.get("kind") == self.name:
            state = _from_version_6(state)
        if state.get("version") == 7 and state.get("kind") == self.name:
            state = _from_version_7(state)
        if state.get("version") == 8 and state.get("kind") == self.name:
            state = _from_version_8(state)
        if state.get("version") != self.version or state.get("kind") != self.name:
            raise ValueError(
                f"state: kind {state.get('kind')!r} version {state.get('version')} does not match "
                f"{self.name!r} version {self.version}"
            )
        if state.get("params") != asdict(self.params):
            raise ValueError(f"state: params differ from this {self.name} detector's settings")
        states = np.asarray(state["states"], dtype=np.float64)
        if states.ndim != 2 or states.shape[1] != self.width:
            raise ValueError(f"state: states must be (n, {self.width}), got {states.shape}")
        self._states = states.copy()


def _from_version_3(state: dict[str, Any]) -> dict[str, Any]:
    """A version-3 checkpoint in version 4's layout: the settings added since at their defaults (off), and the
    quiet-time column (:data:`tunewatch.detect.kernel.QUIET`, added to the header) at zero."""
    defaults = KernelParams()
    params = {**{name: getattr(defaults, name) for name in ("run_learn", "episode_gap")}, **state.get("params", {})}
    states = np.asarray(state["states"], dtype=np.float64)
    if states.ndim == 2:
        states = np.insert(states, k.QUIET, 0.0, axis=1)
    return {**state, "version": 4, "params": params, "states": states}


def _from_version_4(state: dict[str, Any]) -> dict[str, Any]:
    """A version-4 checkpoint in version 5's layout: ``auto_ratio`` at its default (off), and the proportion
    column (:data:`tunewatch.detect.kernel.UNIT`, added to the header) at zero: not known to be a proportion."""
    params = {"auto_ratio": KernelParams().auto_ratio, **state.get("params", {})}
    states = np.asarray(state["states"], dtype=np.float64)
    if states.ndim == 2:
        states = np.insert(states, k.UNIT, 0.0, axis=1)
    return {**state, "version": 5, "params": params, "states": states}


def _from_version_5(state: dict[str, Any]) -> dict[str, Any]:
    """A version-5 checkpoint in version 6's layout: with surprise tails, the CUSUM channel's tails (the second
    half of each memory's slots) are dropped and ``cusum_z``, which no longer acts with tails, is at its default.
    Without tails nothing changed."""
    params = dict(state.get("params", {}))
    states = np.asarray(state["states"], dtype=np.float64)
    bins = int(params.get("tail_bins", 0))
    if bins > 0:
        params["cusum_z"] = KernelParams().cusum_z
        if states.ndim == 2:
            memories = 2 if params.get("tail_decay_long", 0.0) > 0.0 else 1
            # version 5: per memory, per channel (point, CUSUM), up and down; keep each memory's point channel
            # the header of versions 5-8 ended before the flatline columns (added in version 9)
            cusum = [k.LASTX + (2 * m + 1) * 2 * bins + i for m in range(memories) for i in range(2 * bins)]
            states = np.delete(states, cusum, axis=1)
    return {**state, "version": 6, "params": params, "states": states}


def _from_version_6(state: dict[str, Any]) -> dict[str, Any]:
    """A version-6 checkpoint in version 7's layout (the same state rows): ``episode_evidence`` at the value version
    6 compared the evidence with, its ``band_z``, so the resumed detector counts episodes exactly as before."""
    params = dict(state.get("params", {}))
    params.setdefault("episode_evidence", params.get("band_z", KernelParams().band_z))
    return {**state, "version": 7, "params": params}


def _from_version_7(state: dict[str, Any]) -> dict[str, Any]:
    """A version-7 checkpoint in version 8's layout (the same state rows): the shape channel's settings at their
    defaults (off, so no block is added)."""
    defaults = KernelParams()
    shape = {f.name: getattr(defaults, f.name) for f in fields(KernelParams) if f.name.startswith("shape_")}
    return {**state, "version": 8, "params": {**shape, **state.get("params", {})}}


def _from_version_8(state: dict[str, Any]) -> dict[str, Any]:
    """A version-8 checkpoint in version 9's layout: the flatline channel's settings at their defaults (off), and
    its five header columns (:data:`tunewatch.detect.kernel.LASTX` … ``QMAX``) inserted: the last value unknown
    (NaN: the first point after resuming starts no run), no run, no repeats counted. With the channel off these
    columns are never read, so the detector resumes exactly; a checkpoint cannot be resumed with it on (its
    settings differ, and the load refuses)."""
    defaults = KernelParams()
    params = {"quiet_decay": defaults.quiet_decay, "quiet_cap": defaults.quiet_cap, **state.get("params", {})}
    states = np.asarray(state["states"], dtype=np.float64)
    if states.ndim == 2:
        added = np.zeros((states.shape[0], k.QMAX - k.LASTX + 1))
        added[:, 0] = np.nan
        states = np.hstack([states[:, : k.LASTX], added, states[:, k.LASTX :]])
    return {**state, "version": 9, "params": params, "states": states}
