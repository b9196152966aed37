"""Detector benchmark (issue 4): NAB score and speed of the default detector beside River's HalfSpaceTrees.

Usage: python bench/detectors.py [--nab /work/shared/data/nab] [--long 10000000] [--series 10000] [--steps 2100]
       [--skip-river]

Prints, in one run:
  1. NAB score (standard / reward-low-FP / reward-low-FN) and points/s of the default detector and of River's
     ``HalfSpaceTrees`` (behind a ``MinMaxScaler``, as River's documentation uses it) on the same files;
  2. points/s of the default detector on one long series (chunk form) and across many series at once
     (one ``step`` per time step), one core;
  3. memory per series state for the detector kinds and profile sizes.

Rates are points per second of CPU time of this process (``time.process_time``: one core, not inflated by
other processes sharing the machine), with the wall-clock rate beside them.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/ holds scripts named like standard modules (http.py): keep this folder off the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from tunewatch.detect.defaults import NAB_DEFAULT, SERIES_SHAPE  # noqa: E402
from tunewatch.detect.detectors import EnsembleDetector, LevelScaleDetector  # noqa: E402
from tunewatch.detect.kernel_detector import DAY_MS, WEEK_MS  # noqa: E402
from tunewatch.evaluate.nab import load_corpus, load_windows, run_detector, score_all, sweep_corpus  # noqa: E402
from tunewatch.evaluate.registry import nab_scorer  # noqa: E402

MIN = 60_000


class _Timer:
    """CPU and wall time of a block."""

    def __enter__(self) -> _Timer:
        self.cpu0, self.wall0 = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu = time.process_time() - self.cpu0
        self.wall = time.perf_counter() - self.wall0

    def rates(self, n: int) -> str:
        return f"{n / self.cpu:>14,.0f} points/s CPU ({n / self.wall:,.0f} wall)"


def _river_scorer():  # type: ignore[no-untyped-def]
    from river import anomaly, compose, preprocessing

    def score(t_ms: np.ndarray, values: np.ndarray) -> np.ndarray:
        model = compose.Pipeline(preprocessing.MinMaxScaler(), anomaly.HalfSpaceTrees(seed=42))
        out = np.empty(values.size)
        for i, v in enumerate(values):
            x = {"value": float(v)}
            out[i] = model.score_one(x)
            model.learn_one(x)
        return out

    return score


def bench_nab(nab_dir: Path, skip_river: bool) -> None:
    corpus = load_corpus(nab_dir / "data")
    swept = sweep_corpus(corpus, load_windows(nab_dir / "labels" / "combined_windows.json"))
    points = sum(s.values.size for s in corpus)
    print(f"NAB: {len(corpus)} files, {points:,} points")
    print(f"{'detector':<22}{'standard':>10}{'low FP':>10}{'low FN':>10}")
    runs = [("tunewatch default", nab_scorer("default")), ("default + shape channel", nab_scorer("shape"))]
    if not skip_river:
        runs.append(("river HalfSpaceTrees", _river_scorer()))
    for name in ("default", "shape"):
        nab_scorer(name)(corpus[0].t_ms[:100], corpus[0].values[:100])  # compile outside the timing
    for name, scorer in runs:
        with _Timer() as tm:
            scores = run_detector(corpus, scorer)
        res = score_all(swept, scores)
        std, lfp, lfn = (res[p].normalized for p in ("standard", "reward_low_FP_rate", "reward_low_FN_rate"))
        print(f"{name:<22}{std:>10.2f}{lfp:>10.2f}{lfn:>10.2f}{tm.rates(points)}")


def _kinds() -> list[tuple[str, EnsembleDetector | LevelScaleDetector]]:
    """The detectors whose speed is measured: the default, the default with the opt-in shape channel, the level."""
    return [
        ("default (ensemble)", EnsembleDetector(**NAB_DEFAULT)),
        ("default + shape channel", EnsembleDetector(**SERIES_SHAPE)),
        ("level", LevelScaleDetector()),
    ]


def bench_long(n: int) -> None:
    rng = np.random.default_rng(0)
    t = np.arange(n, dtype=np.int64) * MIN
    x = 100 + 10 * np.sin(t / DAY_MS * 2 * np.pi) + rng.normal(0, 2, n)
    for label, det in _kinds():
        det.chunk(t[:100], x[:100], series=1)  # compile
        with _Timer() as tm:
            det.chunk(t, x)
        print(f"one series, {n:,} points, {label}: {tm.rates(n)}")


def bench_many(n_series: int, steps: int) -> None:
    rng = np.random.default_rng(1)
    ids = np.arange(n_series, dtype=np.int64)
    base = rng.uniform(10, 1000, n_series)
    weights = np.ones(n_series)
    for label, det in _kinds():
        det.step(0, ids, base, weights)  # compile + allocate
        vals = base[None, :] + rng.normal(0, 1, (steps, n_series))
        with _Timer() as tm:
            for i in range(steps):
                det.step((i + 1) * MIN, ids, vals[i], weights)
        print(f"{n_series:,} series x {steps} steps, {label}: {tm.rates(n_series * steps)}")


def memory() -> None:
    kinds = [
        ("level/scale + CUSUM, no profile", EnsembleDetector(bins=0)),
        (
            f"NAB default (<= {NAB_DEFAULT['bins']} slots/day, {NAB_DEFAULT['weekly_bins']}/week, surprise histograms)",
            EnsembleDetector(**NAB_DEFAULT),
        ),
        ("NAB default + shape channel (8 x 2 residuals, 32 prototypes)", EnsembleDetector(**SERIES_SHAPE)),
        ("daily profile, 15-min slots (96)", EnsembleDetector(bins=96)),
        ("daily profile, 1-min slots (1440)", EnsembleDetector(bins=1440)),
        ("weekly profile, 10-min slots (1008)", EnsembleDetector(bins=1008, period_ms=WEEK_MS)),
        ("daily 1-min slots (1440) + weekly hourly (168)", EnsembleDetector(bins=1440, weekly_bins=168)),
    ]
    for label, det in kinds:
        print(f"state per series, {label}: {det.bytes_per_series:,} bytes")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nab", type=Path, default=Path("/work/shared/data/nab"))
    ap.add_argument("--long", type=int, default=10_000_000)
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--steps", type=int, default=2100, help="time steps (2,100 includes three period searches)")
    ap.add_argument("--skip-river", action="store_true")
    args = ap.parse_args()
    bench_nab(args.nab, args.skip_river)
    bench_long(args.long)
    bench_many(args.series, args.steps)
    memory()


if __name__ == "__main__":
    main()
