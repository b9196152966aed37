"""Production service telemetry written without tunewatch: a corpus to score detectors on (issue 12).

Usage: python bench/independent_telemetry.py --seed 1 [--per-group 20] [--out DIR]
       (prints a summary; with ``--out`` writes NAB-style CSVs and a ``combined_windows.json`` of labels)

The project's own ``telemetry`` family of ``tunewatch.evaluate.synthetic`` was written by the people who tuned
the detector. This generator shares no code or constants with it or with the detector (it imports nothing from
tunewatch; it was written before the detector's internals were read). It models what an SRE's dashboards show:

* a *load* per service: a daily profile with one or two peaks (business hours or evening), a weekly profile
  (weekends lighter or heavier), slow growth, holidays (a day at 30-70 % of the usual load, not an incident),
  multiplicative noise that is correlated in time (AR(1) in log space);
* five kinds of metric derived from the load, at hourly or per-minute resolution:

  - ``requests``: request counts per interval (negative-binomial around the load), counter resets of the
    exporter (one interval near zero after a restart, not an incident);
  - ``errors``: crash/error *rate* = errors / requests, a ratio of small counts (binomial with an over-dispersed
    per-interval probability), many zeros on small services;
  - ``purchases``: sparse counts (Poisson, 0.05 to a few per interval);
  - ``latency``: a dependency's p95/p99 latency in ms: log-normal, rising with load (queueing), with isolated
    heavy-tailed spikes (GC pauses, one interval, not incidents) and deploy-induced level shifts that stay;
  - ``gauge``: CPU or memory utilisation in %, load-dependent, with deploy-induced level shifts that become the
    new normal (not incidents) and memory's slow creep reset by each deploy;

* missing stretches (the exporter was down: rows absent, as in a real export, so timestamps are irregular);
* labelled incidents, the way an expert labels them: ``outage`` (requests to 0-30 %, errors up), ``drop``
  (a partial loss: one region or one client), ``surge`` (a retry storm), ``error_burst``, ``bad_deploy`` (an
  error rate or latency that steps up and stays until rolled back), ``latency_degradation``,
  ``slow_leak`` (a drift that grows until someone restarts the service), ``flatline`` (stuck-at: the exporter
  repeats one value), ``saturation`` (a gauge pinned near 100 %), ``payments_down`` (purchases at zero).

Every incident gets one label point (its start; for a drift, the moment it has grown to about three times the
metric's noise) and a NAB-style window centred on it, 10 % of the series' rows divided by its number of
incidents. Incidents are spread over the part of the series after NAB's probation so that windows never overlap.
Each series also comes without its incidents (``clean``, same noise) for false-alarm rates.

Seeds 1-5 are for development; 9001 and up are held out (run once, at the end).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

KINDS = ("requests", "errors", "purchases", "latency", "gauge")
RESOLUTIONS = {"hour": 3_600_000, "minute": 60_000}
#: incident types each kind can suffer (drawn uniformly)
INCIDENTS: dict[str, tuple[str, ...]] = {
    "requests": ("outage", "drop", "surge", "flatline"),
    "errors": ("error_burst", "bad_deploy", "outage", "flatline"),
    "purchases": ("payments_down", "drop", "surge"),
    "latency": ("latency_degradation", "bad_deploy", "slow_leak", "flatline"),
    "gauge": ("slow_leak", "saturation", "flatline", "drop"),
}
DEV_SEEDS = (1, 2, 3, 4, 5)
HELD_OUT_SEEDS = (9001, 9002, 9003)
EPOCH_MS = 1_767_571_200_000  # 2026-01-05 00:00 UTC, a Monday


@dataclass(slots=True)
class Incident:
    """One labelled incident: its type, first and last row (inclusive) and the row an expert labels."""

    kind: str
    first: int
    last: int
    label: int


@dataclass(slots=True)
class TelemetrySeries:
    """One series: rows ``t_ms``/``values`` (missing stretches are absent rows), the same series without
    incidents (``clean``), NAB windows as inclusive row ranges, and the incidents behind them."""

    key: str
    kind: str
    resolution: str
    t_ms: np.ndarray
    values: np.ndarray
    clean: np.ndarray
    windows: list[tuple[int, int]]
    incidents: list[Incident] = field(default_factory=list)

    @property
    def group(self) -> str:
        """``kind-resolution``, the unit results are reported by."""
        return f"{self.kind}-{self.resolution}"


# ---------------------------------------------------------------------------------------------------- load model


def _ar1(rng: np.random.Generator, n: int, phi: float, sd: float) -> np.ndarray:
    """A stationary AR(1) path with marginal standard deviation ``sd`` (vectorised through an IIR filter)."""
    from scipy.signal import lfilter

    e = rng.normal(0.0, sd * np.sqrt(1.0 - phi * phi), n)
    e[0] = rng.normal(0.0, sd)
    return np.asarray(lfilter([1.0], [1.0, -phi], e))


def _load(rng: np.random.Generator, t_ms: np.ndarray, step_ms: int) -> np.ndarray:
    """Relative load (mean about 1): daily and weekly shape, growth, holidays and correlated noise."""
    hours = (t_ms - EPOCH_MS) / 3_600_000.0
    hod = hours % 24.0
    dow = (hours // 24.0) % 7.0
    tz = rng.uniform(-8, 9)  # the service's main audience is somewhere: its peak hour moves with it
    if rng.random() < 0.5:  # consumer: one evening peak
        peak = (20.5 + tz) % 24
        daily = 1.0 + rng.uniform(0.4, 0.9) * np.cos(2 * np.pi * (hod - peak) / 24.0)
    else:  # business: two peaks around 10:30 and 15:00, a lunch dip, quiet nights
        a = rng.uniform(0.3, 0.8)
        daily = (
            1.0
            + a * np.cos(2 * np.pi * (hod - (12.5 + tz)) / 24.0)
            + 0.35 * a * np.cos(4 * np.pi * (hod - (10.5 + tz)) / 24.0)
        )
    daily = np.maximum(daily, 0.08)
    weekend = rng.choice([rng.uniform(0.45, 0.8), rng.uniform(1.05, 1.3), 1.0], p=[0.55, 0.25, 0.2])
    weekly = np.where(dow >= 5, weekend, 1.0)
    growth = 1.0 + rng.uniform(-0.1, 0.4) * (hours - hours[0]) / max(hours[-1] - hours[0], 1.0)
    load = daily * weekly * growth
    n_days = int((hours[-1] - hours[0]) // 24)
    if n_days >= 14 and rng.random() < 0.6:  # a holiday (or two): quieter, not an incident
        for _ in range(int(rng.integers(1, 3))):
            day = int(rng.integers(1, n_days))
            on = (hours - hours[0] >= day * 24) & (hours - hours[0] < (day + 1) * 24)
            load = np.where(on, load * rng.uniform(0.3, 0.7), load)
    # correlated noise: minute data wander for ~30 min, hourly for a few hours
    phi = 0.97 if step_ms == 60_000 else 0.6
    load = load * np.exp(_ar1(rng, t_ms.size, phi, rng.uniform(0.03, 0.12)))
    return load / load.mean()


def _deploys(rng: np.random.Generator, t_ms: np.ndarray) -> np.ndarray:
    """Row indices of deploys: every one to four days, in working hours."""
    days = (t_ms[-1] - t_ms[0]) / 86_400_000.0
    k = rng.poisson(max(days / 2.5, 0.3))
    cand = np.flatnonzero(((t_ms - EPOCH_MS) // 3_600_000 % 24 >= 9) & ((t_ms - EPOCH_MS) // 3_600_000 % 24 < 17))
    if k == 0 or cand.size == 0:
        return np.zeros(0, dtype=np.int64)
    return np.sort(rng.choice(cand, size=min(k, cand.size), replace=False))


def _steps(n: int, at: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """A piecewise-constant path that changes by ``sizes[i]`` at row ``at[i]`` (level shifts that stay)."""
    out = np.zeros(n)
    for i, s in zip(at, sizes, strict=True):
        out[i:] += s
    return out


# ------------------------------------------------------------------------------------------------- metric kinds


@dataclass(slots=True)
class _Base:
    """What a metric is made of before sampling, so incidents can act on the right part."""

    load: np.ndarray
    scale: float  # requests per interval at mean load, or the metric's typical value
    extra: dict[str, np.ndarray] = field(default_factory=dict)


def _sample(kind: str, rng: np.random.Generator, base: _Base, mult: np.ndarray, noise_seed: int) -> np.ndarray:
    """Draw the metric's observed values; ``mult`` is the incidents' multiplier on the driving quantity (1 = none).

    The same ``noise_seed`` gives the same noise with and without incidents, so ``clean`` is the twin of ``values``.
    """
    r = np.random.default_rng(noise_seed)
    n = base.load.size
    if kind == "requests":
        lam = base.scale * base.load * mult
        k = base.extra["dispersion"][0]  # negative binomial: Poisson with a gamma-distributed mean
        return r.poisson(lam * r.gamma(k, 1.0 / k, n)).astype(np.float64)
    if kind == "errors":
        req = r.poisson(base.scale * base.load).astype(np.int64)
        p = np.clip(base.extra["p"] * mult * r.gamma(4.0, 0.25, n), 0.0, 0.95)
        err = r.binomial(req, p)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(req > 0, err / np.maximum(req, 1), 0.0)
    if kind == "purchases":
        return r.poisson(base.scale * base.load * mult * r.gamma(10.0, 0.1, n)).astype(np.float64)
    if kind == "latency":
        z = r.standard_normal(n)
        heavy = r.random(n) < base.extra["spike_rate"][0]  # GC pauses, cold caches: one interval, not incidents
        spikes = np.where(heavy, r.pareto(2.5, n) + 1.0, 1.0)
        queue = 1.0 + base.extra["load_gain"][0] * np.maximum(base.load, 0) ** 2
        return base.scale * base.extra["level"] * queue * mult * np.exp(base.extra["sigma"][0] * z) * spikes
    # gauge: utilisation in %, load-dependent, deploy shifts and a creep in base.extra["level"]
    util = base.extra["level"] + base.scale * base.load * mult + r.normal(0.0, base.extra["sigma"][0], n)
    return np.clip(util, 0.0, 100.0)


def _base(kind: str, rng: np.random.Generator, load: np.ndarray, t_ms: np.ndarray, step_ms: int) -> _Base:
    per_min = step_ms / 60_000
    n = load.size
    if kind == "requests":
        rate = float(np.exp(rng.uniform(np.log(3), np.log(3000))))  # requests per minute
        # per-interval over-dispersion of 3-18 % (gamma shape 30-1,000) on top of the load's own wander
        return _Base(load, rate * per_min, {"dispersion": np.array([np.exp(rng.uniform(np.log(30), np.log(1000)))])})
    if kind == "errors":
        rate = float(np.exp(rng.uniform(np.log(5), np.log(2000))))  # sessions per minute
        return _Base(load, rate * per_min, {"p": np.full(n, float(np.exp(rng.uniform(np.log(5e-4), np.log(0.03)))))})
    if kind == "purchases":
        rate = float(np.exp(rng.uniform(np.log(0.02), np.log(2.0))))  # purchases per minute
        return _Base(load, rate * per_min)
    deploys = _deploys(rng, t_ms)
    if kind == "latency":
        shifts = np.exp(rng.normal(0.0, 0.15, deploys.size))  # each deploy moves latency by ~±15 %, and it stays
        level = np.exp(_steps(n, deploys, np.log(shifts)))
        sigma = rng.uniform(0.05, 0.25) * (1.6 if per_min == 1 else 1.0)
        return _Base(
            load,
            float(np.exp(rng.uniform(np.log(15), np.log(400)))),
            {
                "level": level,
                "sigma": np.array([sigma]),
                "spike_rate": np.array([rng.uniform(0.0, 0.004)]),
                "load_gain": np.array([rng.uniform(0.0, 0.4)]),
            },
        )
    memory = rng.random() < 0.5
    level = np.maximum(rng.uniform(10, 40) + _steps(n, deploys, rng.normal(0.0, 6.0, deploys.size)), 3.0)
    if memory:  # memory creeps up slowly between deploys (caches fill) and falls back at each
        creep = rng.uniform(0.5, 3.0) / 86_400_000 * step_ms  # % per row
        seg_start = np.zeros(n, dtype=np.int64)
        seg_start[deploys] = deploys
        np.maximum.accumulate(seg_start, out=seg_start)
        level = level + creep * (np.arange(n) - seg_start)
    scale = rng.uniform(3, 10) if memory else rng.uniform(10, 40)
    return _Base(load, scale, {"level": level, "sigma": np.array([rng.uniform(0.5, 3.0)])})


# ------------------------------------------------------------------------------------------------------ incidents


def _duration(rng: np.random.Generator, incident: str, step_ms: int) -> int:
    """Rows an incident lasts: minutes to hours on per-minute data, hours to days on hourly data."""
    hourly = step_ms == 3_600_000
    if incident == "slow_leak":
        hours = rng.uniform(24, 96) if hourly else rng.uniform(3, 16)
    elif incident in ("bad_deploy", "flatline"):
        hours = rng.uniform(3, 30) if hourly else rng.uniform(0.5, 6)
    elif incident == "payments_down":
        hours = rng.uniform(2, 10) if hourly else rng.uniform(0.5, 3)
    else:
        hours = rng.uniform(1, 8) if hourly else rng.uniform(5 / 60, 2.5)
    return max(1, round(hours * 3_600_000 / step_ms))


def _apply(
    incident: str, rng: np.random.Generator, kind: str, base: _Base, mult: np.ndarray, a: int, b: int
) -> tuple[str | None, int]:
    """Apply an incident to rows [a, b) through ``mult`` (or return a post-sampling action); the label offset."""
    span = b - a
    if incident == "outage":
        mult[a:b] *= rng.uniform(0.0, 0.3) if kind == "requests" else rng.uniform(8, 40)
    elif incident == "drop":
        mult[a:b] *= rng.uniform(0.3, 0.7) if kind != "gauge" else rng.uniform(0.0, 0.4)
    elif incident == "surge":
        mult[a:b] *= rng.uniform(2.0, 5.0)
    elif incident == "error_burst":
        mult[a:b] *= rng.uniform(4, 30)
    elif incident == "bad_deploy":
        mult[a:b] *= rng.uniform(2.5, 10) if kind == "errors" else rng.uniform(1.4, 2.5)
    elif incident == "latency_degradation":
        mult[a:b] *= rng.uniform(1.6, 5.0)
    elif incident == "payments_down":
        mult[a:b] *= rng.uniform(0.0, 0.05)
    elif incident == "saturation":
        return "saturate", 0
    elif incident == "flatline":
        return "flatline", 0
    elif incident == "slow_leak":
        ramp = np.linspace(0.0, 1.0, span)
        if kind == "gauge":
            top = rng.uniform(25, 60)  # percentage points gained by the end
            base.extra["level"][a:b] += top * ramp
            noise = float(base.extra["sigma"][0]) + 0.15 * base.scale
            reach = min(1.0, 3.0 * noise / top)
        else:
            top = rng.uniform(1.0, 3.0)  # latency multiplied by up to 2-4x
            mult[a:b] *= 1.0 + top * ramp
            reach = min(1.0, 3.0 * float(base.extra["sigma"][0]) / top)
        return None, int(reach * (span - 1))
    return None, 0


def _nab_windows(n: int, labels: list[int]) -> list[tuple[int, int]]:
    """NAB's windows: 10 % of the rows shared between the labels, each centred on its label, clipped to the file."""
    if not labels:
        return []
    width = int(0.10 * n / len(labels))
    return [(max(0, lab - width // 2), min(n - 1, lab + width // 2)) for lab in sorted(labels)]


def _one(rng: np.random.Generator, key: str, kind: str, resolution: str) -> TelemetrySeries:
    step = RESOLUTIONS[resolution]
    n = int(24 * 7 * rng.uniform(4, 12)) if resolution == "hour" else int(1440 * rng.uniform(2, 5))
    start = EPOCH_MS + int(rng.integers(0, 60)) * 86_400_000 + int(rng.integers(0, 24)) * 3_600_000
    t_ms = start + step * np.arange(n, dtype=np.int64)
    load = _load(rng, t_ms, step)
    base = _base(kind, rng, load, t_ms, step)
    noise_seed = int(rng.integers(2**62))
    clean = _sample(kind, rng, base, np.ones(n), noise_seed)

    # incidents, spread over the rows after NAB's probation so their windows cannot overlap
    n_inc = int(rng.choice([0, 1, 2, 3, 4], p=[0.1, 0.3, 0.3, 0.2, 0.1]))
    probation = min(int(0.15 * n), 750)
    seg = (n - probation) / max(n_inc, 1)
    mult = np.ones(n)
    after: list[tuple[str, int, int]] = []
    incidents: list[Incident] = []
    for i in range(n_inc):
        kinds = INCIDENTS[kind]
        weights = np.array([0.4 if k == "flatline" else 1.0 for k in kinds])  # stuck exporters are rarer
        incident = str(rng.choice(kinds, p=weights / weights.sum()))
        dur = min(_duration(rng, incident, step), int(0.6 * seg))
        lo = probation + int(i * seg + 0.2 * seg)
        hi = probation + int((i + 1) * seg - 0.2 * seg) - dur
        a = int(rng.integers(lo, max(hi, lo + 1)))
        b = min(a + max(dur, 1), n)
        action, offset = _apply(incident, rng, kind, base, mult, a, b)
        if action:
            after.append((action, a, b))
        incidents.append(Incident(incident, a, b - 1, a + offset))
    values = _sample(kind, rng, base, mult, noise_seed) if n_inc else clean.copy()
    for action, a, b in after:
        if action == "flatline":
            values[a:b] = values[a - 1]  # the exporter repeats its last value
        else:  # saturation
            values[a:b] = np.clip(rng.uniform(93, 99.5) + rng.normal(0, 0.5, b - a), 0, 100)

    # exporter artefacts, not incidents: counter resets (one near-zero interval) on request counters
    if kind == "requests" and rng.random() < 0.3:
        for r in rng.integers(probation, n, int(rng.integers(1, 3))):
            if not any(inc.first - 5 <= r <= inc.last + 5 for inc in incidents):
                values[r] = clean[r] = np.floor(values[r] * rng.uniform(0.0, 0.1))

    # missing stretches (the exporter or the scrape was down): rows absent, away from the incidents
    keep = np.ones(n, dtype=bool)
    if rng.random() < 0.35:
        for _ in range(int(rng.integers(1, 4))):
            length = max(2, int(n * rng.uniform(0.002, 0.02)))
            g = int(rng.integers(probation, n - length))
            if not any(inc.first - length - 5 <= g <= inc.last + 5 for inc in incidents):
                keep[g : g + length] = False
    new_index = np.cumsum(keep) - 1
    for inc in incidents:
        inc.first, inc.last, inc.label = (int(new_index[x]) for x in (inc.first, inc.last, inc.label))
    m = int(keep.sum())
    return TelemetrySeries(
        key=key,
        kind=kind,
        resolution=resolution,
        t_ms=t_ms[keep],
        values=values[keep],
        clean=clean[keep],
        windows=_nab_windows(m, [inc.label for inc in incidents]),
        incidents=incidents,
    )


def generate(seed: int, per_group: int = 20) -> list[TelemetrySeries]:
    """``per_group`` series of every kind at every resolution (5 x 2 groups), all drawn from ``seed``."""
    rng = np.random.default_rng([seed, 0x7E1E])
    out = []
    for kind in KINDS:
        for res in RESOLUTIONS:
            for i in range(per_group):
                out.append(_one(rng, f"{kind}-{res}/{seed}-{i:03d}.csv", kind, res))
    return out


def write_corpus(series: list[TelemetrySeries], out: Path) -> None:
    """NAB's layout: ``data/GROUP/FILE.csv`` (timestamp,value) and ``labels/combined_windows.json``."""
    labels: dict[str, list[list[str]]] = {}
    for s in series:
        path = out / "data" / s.key
        path.parent.mkdir(parents=True, exist_ok=True)
        stamps = np.datetime_as_string(s.t_ms.astype("datetime64[ms]"), unit="s")
        stamps = np.char.replace(stamps, "T", " ")
        lines = [f"{t},{v:.6g}" for t, v in zip(stamps, s.values, strict=True)]
        path.write_text("timestamp,value\n" + "\n".join(lines) + "\n")
        labels[s.key] = [[f"{stamps[a]}.000000", f"{stamps[b]}.000000"] for a, b in s.windows]
    (out / "labels").mkdir(parents=True, exist_ok=True)
    (out / "labels" / "combined_windows.json").write_text(json.dumps(labels, indent=1) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--per-group", type=int, default=20)
    ap.add_argument("--out", type=Path, default=None, help="write NAB-style CSVs and labels here")
    args = ap.parse_args()
    series = generate(args.seed, args.per_group)
    points = sum(s.values.size for s in series)
    counts: dict[str, int] = {}
    for s in series:
        for inc in s.incidents:
            counts[inc.kind] = counts.get(inc.kind, 0) + 1
    print(f"seed {args.seed}: {len(series)} series, {points:,} rows, {sum(counts.values())} incidents")
    print("  " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    if args.out:
        write_corpus(series, args.out)
        print(f"written to {args.out}")


if __name__ == "__main__":
    main()
