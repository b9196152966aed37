"""A seeded robustness suite of labelled series, in families a production monitor meets and NAB lacks.

Every family draws its own parameters per series (level, noise, period, anomaly kind, size, position) from a
seeded generator, so a detector is measured on a *family* of series, not on a few files. Each series comes in
two versions: with anomalies (labelled with NAB-style windows: 10 % of the series' length divided by the number
of anomalies, centred on each anomaly's start) and without (the same draw with nothing injected), on which every
detection is a false alarm.

Families (hourly and per-minute resolutions are drawn within each):

* ``gaussian`` — level + Gaussian noise; ``heavy_tails`` — Student-t noise with 2.5–5 degrees of freedom;
* ``sparse_counts`` — Poisson counts with mean 0.2–3 (most points zero), bursts and droughts as anomalies;
* ``level_shift`` — a lasting shift (the new normal: only its onset is anomalous);
* ``trend`` — a linear trend, with a spike, dip or change in slope as anomaly;
* ``seasonal`` — a period of 12 h, a day or a week (per-minute or hourly data), or an hourly cycle;
* ``missing`` — stretches of missing points (NaN) around, not on, the anomaly;
* ``irregular`` — jittered timestamps with occasional gaps;
* ``short`` — 200–500 points only;
* ``telemetry`` — what a service's own monitoring records, several properties at once: request rates
  (over-dispersed counts with a daily and weekly shape, multiplicative noise, slow growth), crash rates (a
  binomial ratio over a seasonal number of sessions: mostly zeros at night), purchases (a few per interval) and
  latency (log-normal, heavier at peak load); incidents are drops, outages, spikes, error bursts and latency
  steps of 10–120 points, sized against the local noise (3–8 of its deviations), not against the level.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np

from tunewatch.evaluate.nab_score import FloatArray, probation_length

#: The suite's seeds: settings and the label-free threshold are developed on ``DEV_SEED``; ``HELD_OUT_SEED`` is
#: only ever reported.
DEV_SEED: Final = 1
HELD_OUT_SEED: Final = 9090

MINUTE_MS: Final = 60_000
HOUR_MS: Final = 3_600_000
BASE_MS: Final = 1_767_225_600_000  # 2026-01-01T00:00:00Z


@dataclass(slots=True)
class SyntheticSeries:
    """One generated series with and without its anomalies.

    >>> (s,) = generate(seed=7, per_family=1, families=["level_shift"])
    >>> s.key, len(s.values) == len(s.clean) == len(s.t_ms), len(s.windows) == len(s.anomaly_rows)
    ('level_shift/000', True, True)
    """

    key: str  # "FAMILY/NNN"
    t_ms: np.ndarray  # int64 epoch ms
    values: FloatArray  # with anomalies
    clean: FloatArray  # the same draw without anomalies
    windows: list[tuple[int, int]]  # inclusive row ranges of the labelled windows
    anomaly_rows: list[int]  # first row of each injected anomaly


Rng = np.random.Generator


def _resolution(rng: Rng) -> tuple[int, int]:
    """(interval ms, length): hourly series are shorter in points but longer in time."""
    if rng.random() < 0.4:
        return HOUR_MS, int(rng.integers(1000, 3000))
    return MINUTE_MS * int(rng.choice([1, 5])), int(rng.integers(2000, 6000))


def _times(rng: Rng, step: int, n: int, jitter: bool = False) -> np.ndarray:
    t = BASE_MS + np.arange(n, dtype=np.int64) * step
    if jitter:
        dt = rng.uniform(0.6, 1.4, n) * step
        gaps = rng.random(n) < 0.01
        dt[gaps] *= rng.integers(2, 8, int(gaps.sum()))
        t = BASE_MS + np.cumsum(dt).astype(np.int64)
    return t


def _season(rng: Rng, t: np.ndarray, step: int, amp: float) -> FloatArray:
    """A periodic shape with a period the series' resolution can show (12 h, a day, a week; an hour on
    per-minute data)."""
    choices = [12 * HOUR_MS, 24 * HOUR_MS, 7 * 24 * HOUR_MS]
    if step == MINUTE_MS:
        choices.append(HOUR_MS)
    period = float(rng.choice(choices))
    ph = 2.0 * np.pi * ((t - BASE_MS) % period) / period
    shape = np.sin(ph) + 0.4 * rng.uniform(-1, 1) * np.sin(2 * ph + rng.uniform(0, 6))
    return amp * shape


def _anomaly_starts(rng: Rng, n: int, k: int, dur: int) -> list[int]:
    """``k`` anomaly start rows after the probation period, apart by more than a window."""
    lo = int(probation_length(n)) + int(0.05 * n)
    hi = n - dur - 2
    gap = max(int(0.1 * n / k), dur + 2)
    starts: list[int] = []
    for _ in range(50 * k):
        if len(starts) == k or hi <= lo:
            break
        s = int(rng.integers(lo, hi))
        if all(abs(s - o) > gap for o in starts):
            starts.append(s)
    return sorted(starts)


def _inject(rng: Rng, x: FloatArray, starts: list[int], scale: float, kinds: tuple[str, ...]) -> FloatArray:
    """Add an anomaly at each start: a spike, a dip, a short level change, a variance burst or a flat line."""
    y = x.copy()
    for s in starts:
        kind = str(rng.choice(kinds))
        size = scale * rng.uniform(5.0, 10.0)
        if kind == "spike":
            y[s] += size * rng.choice([-1.0, 1.0])
        elif kind == "level":
            d = int(rng.integers(10, 60))
            y[s : s + d] += size * rng.choice([-1.0, 1.0])
        elif kind == "variance":
            d = int(rng.integers(20, 80))
            y[s : s + d] += rng.normal(0.0, size / 2.0, y[s : s + d].size)
        elif kind == "flat":
            d = int(rng.integers(30, 120))
            y[s : s + d] = y[s] - size
    return y


def _windows(n: int, starts: list[int]) -> list[tuple[int, int]]:
    if not starts:
        return []
    half = max(int(0.1 * n / len(starts) / 2), 1)
    return [(max(s - half, 0), min(s + half, n - 1)) for s in starts]


def _series(
    rng: Rng, key: str, t: np.ndarray, clean: FloatArray, scale: float, kinds: tuple[str, ...]
) -> SyntheticSeries:
    n = clean.size
    starts = _anomaly_starts(rng, n, int(rng.integers(1, 4)), 120)
    values = _inject(rng, clean, starts, scale, kinds)
    return SyntheticSeries(key, t, values, clean, _windows(n, starts), starts)


_POINT_KINDS: Final = ("spike", "level", "variance", "flat")


def _gaussian(rng: Rng, key: str) -> SyntheticSeries:
    step, n = _resolution(rng)
    sd = rng.uniform(0.5, 20.0)
    x = rng.uniform(-50, 500) + rng.normal(0.0, sd, n)
    return _series(rng, key, _times(rng, step, n), x, sd, _POINT_KINDS)


def _heavy(rng: Rng, key: str) -> SyntheticSeries:
    step, n = _resolution(rng)
    sd = rng.uniform(0.5, 20.0)
    x = rng.uniform(0, 500) + sd * rng.standard_t(rng.uniform(2.5, 5.0), n)
    return _series(rng, key, _times(rng, step, n), x, 2.0 * sd, ("spike", "level", "flat"))


def _sparse_counts(rng: Rng, key: str) -> SyntheticSeries:
    step, n = _resolution(rng)
    lam = rng.uniform(0.2, 3.0)
    t = _times(rng, step, n)
    clean = rng.poisson(lam, n).astype(np.float64)
    starts = _anomaly_starts(rng, n, int(rng.integers(1, 3)), 120)
    values = clean.copy()
    for s in starts:
        d = int(rng.integers(10, 60))
        if rng.random() < 0.5:  # a burst
            values[s : s + d] = rng.poisson(lam * rng.uniform(5, 12) + 3.0, values[s : s + d].size)
        else:  # a drought: a count that is rarely zero goes to zero for long
            values[s : s + max(d, int(12 / min(lam, 1.0)))] = 0.0
    return SyntheticSeries(key, t, values, clean, _windows(n, starts), starts)


def _level_shift(rng: Rng, key: str) -> SyntheticSeries:
    step, n = _resolution(rng)
    sd = rng.uniform(0.5, 20.0)
    t = _times(rng, step, n)
    clean = rng.uniform(0, 500) + rng.normal(0.0, sd, n)
    starts = _anomaly_starts(rng, n, 1, 120)
    values = clean.copy()
    for s in starts:
        values[s:] += sd * rng.uniform(5.0, 10.0) * rng.choice([-1.0, 1.0])  # lasting: the new normal
    return SyntheticSeries(key, t, values, clean, _windows(n, starts), starts)


def _trend(rng: Rng, key: str) -> SyntheticSeries:
    step, n = _resolution(rng)
    sd = rng.uniform(0.5, 10.0)
    slope = rng.uniform(-0.05, 0.05) * sd
    clean = rng.uniform(100, 500) + slope * np.arange(n) + rng.normal(0.0, sd, n)
    return _series(rng, key, _times(rng, step, n), clean, sd, ("spike", "level", "flat"))


def _seasonal(rng: Rng, key: str) -> SyntheticSeries:
    step, n = _resolution(rng)
    if step == 5 * MINUTE_MS:
        step = MINUTE_MS
    t = _times(rng, step, n)
    sd = rng.uniform(0.5, 10.0)
    amp = sd * rng.uniform(3.0, 15.0)
    clean = rng.uniform(100, 500) + _season(rng, t, step, amp) + rng.normal(0.0, sd, n)
    return _series(rng, key, t, clean, sd, _POINT_KINDS)


def _missing(rng: Rng, key: str) -> SyntheticSeries:
    s = _gaussian(rng, key)
    n = s.values.size
    for _ in range(int(rng.integers(2, 6))):
        a = int(rng.integers(0, n - 50))
        if any(abs(a - r) < 150 for r in s.anomaly_rows):
            continue  # gaps around, not on, the anomaly
        d = int(rng.integers(5, 50))
        s.values[a : a + d] = np.nan
        s.clean[a : a + d] = np.nan
    return s


def _irregular(rng: Rng, key: str) -> SyntheticSeries:
    step, n = _resolution(rng)
    sd = rng.uniform(0.5, 20.0)
    x = rng.uniform(0, 500) + rng.normal(0.0, sd, n)
    return _series(rng, key, _times(rng, step, n, jitter=True), x, sd, _POINT_KINDS)


def _short(rng: Rng, key: str) -> SyntheticSeries:
    n = int(rng.integers(200, 500))
    step = int(rng.choice([MINUTE_MS, HOUR_MS]))
    sd = rng.uniform(0.5, 20.0)
    x = rng.uniform(0, 500) + rng.normal(0.0, sd, n)
    starts = _anomaly_starts(rng, n, 1, 20)
    values = _inject(rng, x, starts, sd, ("spike", "level"))
    return SyntheticSeries(key, _times(rng, step, n), values, x, _windows(n, starts), starts)


def _load_shape(rng: Rng, t: np.ndarray) -> FloatArray:
    """A multiplicative daily and weekly load shape around 1 (peak in the afternoon, quieter weekends)."""
    day = ((t - BASE_MS) % (24 * HOUR_MS)) / (24 * HOUR_MS)
    week = ((t - BASE_MS) // (24 * HOUR_MS)) % 7
    amp = rng.uniform(0.3, 0.8)
    shape = 1.0 + amp * np.sin(2.0 * np.pi * (day - 0.35)) + 0.2 * amp * np.sin(4.0 * np.pi * day + rng.uniform(0, 6))
    weekend = np.where(week >= 5, rng.uniform(0.6, 0.95), 1.0)
    return np.maximum(shape, 0.05) * weekend


def _telemetry(rng: Rng, key: str) -> SyntheticSeries:
    if rng.random() < 0.4:
        step, n = HOUR_MS, int(rng.integers(700, 2500))
    else:
        step, n = MINUTE_MS, int(rng.integers(3000, 10000))
    t = _times(rng, step, n)
    load = _load_shape(rng, t) * (1.0 + rng.uniform(-0.2, 0.4) * np.arange(n) / n)  # slow growth or decline
    kind = str(rng.choice(["requests", "crash_rate", "purchases", "latency"]))
    starts = _anomaly_starts(rng, n, int(rng.integers(1, 4)), 120)
    factor = np.ones(n)  # the incident, as a factor on the true rate (or latency)
    zero_at: list[tuple[int, int]] = []
    for s in starts:
        d = int(rng.integers(10, 120))
        size = rng.uniform(3.0, 8.0)  # local deviations
        factor[s : s + d] = -size  # marked; resolved per kind below, against that kind's local noise
        if kind in ("requests", "purchases") and rng.random() < 0.25:
            zero_at.append((s, min(d, 40)))  # an outage: nothing at all
    mark = factor < 0.0
    if kind == "requests" or kind == "purchases":
        lam = load * (rng.uniform(50, 5000) if kind == "requests" else rng.uniform(1.0, 30.0))
        disp = rng.uniform(20.0, 500.0)  # gamma-Poisson: over-dispersed counts
        rel_sd = np.sqrt(1.0 / lam + 1.0 / disp)  # local relative deviation of a count
        up = rng.random(n) < 0.3  # spikes less common than drops
        f = np.where(up, 1.0 + (-factor) * rel_sd, np.maximum(1.0 - (-factor) * rel_sd, 0.05))
        rate = lam * np.where(mark, f, 1.0)
        clean = rng.poisson(rng.gamma(disp, lam / disp)).astype(np.float64)
        values = rng.poisson(rng.gamma(disp, rate / disp)).astype(np.float64)
        values[~mark] = clean[~mark]
        for s, d in zero_at:
            values[s : s + d] = 0.0
    elif kind == "crash_rate":
        sessions = rng.poisson(load * rng.uniform(20, 2000)).astype(np.float64)
        p0 = rng.uniform(0.001, 0.02)
        p = np.where(mark, np.minimum(p0 * (1.0 + (-factor) * rng.uniform(0.5, 1.5)), 0.5), p0)
        crashes_clean = rng.binomial(sessions.astype(np.int64), p0).astype(np.float64)
        crashes = rng.binomial(sessions.astype(np.int64), p).astype(np.float64)
        crashes[~mark] = crashes_clean[~mark]
        with np.errstate(invalid="ignore", divide="ignore"):
            clean = np.where(sessions > 0, crashes_clean / sessions, 0.0)
            values = np.where(sessions > 0, crashes / sessions, 0.0)
    else:  # latency: log-normal, slower at peak load
        sigma = rng.uniform(0.05, 0.4)
        base = rng.uniform(20.0, 500.0) * (1.0 + rng.uniform(0.0, 0.3) * (load - 1.0))
        noise = rng.normal(0.0, sigma, n)
        clean = base * np.exp(noise)
        step_up = np.exp((-factor) * sigma * rng.uniform(0.8, 1.2))
        values = clean * np.where(mark, step_up, 1.0)
    return SyntheticSeries(key, t, values, clean, _windows(n, starts), starts)


FAMILIES: Final[dict[str, Callable[[Rng, str], SyntheticSeries]]] = {
    "gaussian": _gaussian,
    "heavy_tails": _heavy,
    "sparse_counts": _sparse_counts,
    "level_shift": _level_shift,
    "trend": _trend,
    "seasonal": _seasonal,
    "missing": _missing,
    "irregular": _irregular,
    "short": _short,
    "telemetry": _telemetry,
}


def generate(seed: int, per_family: int = 40, families: list[str] | None = None) -> list[SyntheticSeries]:
    """``per_family`` series of every family (or of ``families``), from one seed: the same seed, the same
    series, whichever families are asked for. Series without any anomaly placed (too short) are skipped.

    >>> [s.key for s in generate(1, 2, ["telemetry"])] == [s.key for s in generate(1, 2) if s.key.startswith("tel")]
    True
    """
    names = families or list(FAMILIES)
    unknown = [f for f in names if f not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown famil{'ies' if len(unknown) > 1 else 'y'} {', '.join(unknown)}")
    out = []
    order = list(FAMILIES)
    for name in names:
        rng = np.random.default_rng([seed, order.index(name)])  # a family's stream does not depend on the others
        for i in range(per_family):
            s = FAMILIES[name](rng, f"{name}/{i:03d}")
            if s.windows:
                out.append(s)
    return out
