"""Detection stage benchmark: windows/s and series/s of ``DetectionStage`` alone, before and after.

Usage: python bench/detection_stage.py [--minutes 240] [--rate 7000] [--block-minutes 5] [--repeats 7]
       [--seed 1] [--baseline REV | --baseline none]

Simulates a stream once (``tunewatch.simulate``), runs it through the real ``EnterpriseDataValidator`` and
``MusicDataProcessor`` in blocks of ``--block-minutes`` simulated minutes (5 minutes at 7,000 events/min is
about the 16 MiB chunk ``tunewatch replay`` reads), keeps the metric frames each block closes, then times only
the detection stage over those frames, with the default rules and detector:

  * the stage as it is now, and the stage of git revision ``--baseline`` (read with ``git show``, default: the
    last revision with the per-metric join registry), alternated pass by pass (ABBA), medians reported, since
    the machine's speed drifts by ±15 % over minutes;
  * the time split between series-key lookup (registry), detector stepping and the rest, from one extra pass
    of each with timing wrappers around those calls (not part of the throughput figures);
  * a check that both give identical detection frames.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/ holds scripts named like standard modules (http.py): keep this folder off the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import types  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from typing import Any  # noqa: E402

import polars as pl  # noqa: E402
from polars.testing import assert_frame_equal  # noqa: E402

from tunewatch.alert.rules import load_rules  # noqa: E402
from tunewatch.detect import stage as current  # noqa: E402
from tunewatch.ingest.batch import RawBatch, conform  # noqa: E402
from tunewatch.process.processor import MusicDataProcessor  # noqa: E402
from tunewatch.simulate import SimulationConfig, Simulator  # noqa: E402
from tunewatch.validate.validator import EnterpriseDataValidator  # noqa: E402

#: the last revision whose stage joined every metric's keys against its own registry
DEFAULT_BASELINE = "1db0b5e651c38f90f840dccb99639876582a497f"
STAGE_PATH = "src/tunewatch/detect/stage.py"
Frames = list[tuple[pl.DataFrame, int]]


def metric_frames(minutes: int, rate: int, seed: int, block_minutes: int) -> tuple[Frames, int]:
    """The metric frames the processor closes block by block (with each block's last window), and the number
    of events received."""
    simulator = Simulator(SimulationConfig(minutes=minutes, events_per_minute=rate, seed=seed))
    validator, processor = EnterpriseDataValidator(), MusicDataProcessor()
    frames: Frames = []
    received = 0
    for block in simulator.blocks(block_minutes):
        result = validator.validate(RawBatch(frame=conform(block), source="bench"))
        received += result.received
        processed = processor.process(result, final=False)
        if processed.windows:
            frames.append((processed.metrics, processed.windows[-1]))
    validator.watermark.observe_end()
    processed = processor.flush()
    if processed.windows:
        frames.append((processed.metrics, processed.windows[-1]))
    return frames, received


def load_baseline(rev: str) -> types.ModuleType:
    """The stage module of git revision ``rev`` (read-only: ``git show``), imported under another name."""
    root = Path(__file__).resolve().parent.parent
    source = subprocess.run(
        ["git", "show", f"{rev}:{STAGE_PATH}"], cwd=root, check=True, capture_output=True, text=True
    ).stdout
    module = types.ModuleType("tunewatch_baseline_stage")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, f"{rev[:10]}:{STAGE_PATH}", "exec"), module.__dict__)
    return module


def run_all(stage_module: types.ModuleType, targets: dict[str, list[str]], frames: Frames) -> list[pl.DataFrame]:
    """A fresh stage over every frame, in order."""
    stage = stage_module.DetectionStage(targets)
    return [stage.run(metrics, until=until) for metrics, until in frames]


def timed_pass(stage_module: types.ModuleType, targets: dict[str, list[str]], frames: Frames) -> tuple[float, float]:
    """Wall and CPU seconds of one pass."""
    wall, cpu = time.perf_counter(), time.process_time()
    run_all(stage_module, targets, frames)
    return time.perf_counter() - wall, time.process_time() - cpu


class _Split:
    """Accumulated wall time of wrapped calls, by part."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {"registry": 0.0, "step": 0.0}

    def wrap(self, part: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[part] += time.perf_counter() - t

        return timed


@contextmanager
def _patched(obj: Any, name: str, value: Any) -> Iterator[None]:
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


def split_pass(stage_module: types.ModuleType, targets: dict[str, list[str]], frames: Frames) -> dict[str, float]:
    """Seconds in key lookup, detector steps and the rest, over one pass with timing wrappers."""
    split = _Split()
    registries = [c for c in ("_SeriesRegistry", "_KeyRegistry", "_MetricSeries") if hasattr(stage_module, c)]
    stage = stage_module.DetectionStage(targets)
    for detector in stage.detectors.values():
        detector.step = split.wrap("step", detector.step)  # instance attribute: this stage's detectors only
    with _patched_all(stage_module, registries, split):
        t = time.perf_counter()
        for metrics, until in frames:
            stage.run(metrics, until=until)
        total = time.perf_counter() - t
    return {**split.seconds, "other": total - sum(split.seconds.values()), "total": total}


@contextmanager
def _patched_all(module: types.ModuleType, classes: list[str], split: _Split) -> Iterator[None]:
    if not classes:
        yield
        return
    cls = getattr(module, classes[0])
    with _patched(cls, "ids", split.wrap("registry", cls.ids)), _patched_all(module, classes[1:], split):
        yield


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=int, default=240, help="simulated minutes")
    parser.add_argument("--rate", type=int, default=7_000, help="events per simulated minute")
    parser.add_argument("--block-minutes", type=int, default=5, help="simulated minutes per ingested block")
    parser.add_argument("--repeats", type=int, default=7, help="timed passes of each stage")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--baseline", default=DEFAULT_BASELINE, help="git revision to compare with, or 'none'")
    args = parser.parse_args()

    t = time.perf_counter()
    frames, received = metric_frames(args.minutes, args.rate, args.seed, args.block_minutes)
    rows = sum(f.height for f, _ in frames)
    print(
        f"prepared {received:,} events → {len(frames)} metric frames, {rows:,} rows "
        f"(simulate + validate + process: {time.perf_counter() - t:.1f} s, not timed below)"
    )
    targets = load_rules().targets()
    stages: dict[str, types.ModuleType] = {"now": current}
    if args.baseline != "none":
        stages = {"before": load_baseline(args.baseline), "now": current}

    reference = run_all(current, targets, frames)
    windows = sum(int(d.get_column("window_start").n_unique()) for d in reference if d.height)
    points = sum(d.height for d in reference)
    if "before" in stages:
        for old, new in zip(run_all(stages["before"], targets, frames), reference, strict=True):
            assert_frame_equal(old, new)
        print("detections: identical before/after")

    walls: dict[str, list[float]] = {name: [] for name in stages}
    cpus: dict[str, list[float]] = {name: [] for name in stages}
    names = list(stages)
    for r in range(args.repeats):
        for name in names if r % 2 == 0 else names[::-1]:  # ABBA: drift hits both alike
            wall, cpu = timed_pass(stages[name], targets, frames)
            walls[name].append(wall)
            cpus[name].append(cpu)

    print(f"\n{windows:,} windows, {points:,} series points (series × window), {args.repeats} passes each")
    print(f"{'stage':<8}{'wall s (median)':>16}{'CPU s':>8}{'windows/s':>11}{'series/s':>12}{'s per M events':>16}")
    for name in names:
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        spread = f"  (wall {min(walls[name]):.3f}–{max(walls[name]):.3f})"
        print(
            f"{name:<8}{wall:>16.3f}{cpu:>8.3f}{windows / wall:>11,.0f}{points / wall:>12,.0f}"
            f"{wall / received * 1e6:>16.3f}{spread}"
        )
    if "before" in stages:
        ratios = [b / n for b, n in zip(walls["before"], walls["now"], strict=True)]
        print(f"speed-up (pass by pass, median): {statistics.median(ratios):.2f}x")

    print("\ntime split (one extra pass each, with timing wrappers), seconds and share of the pass:")
    for name in names:
        split = split_pass(stages[name], targets, frames)
        shares = (f"{k} {split[k]:.3f} ({split[k] / split['total']:.0%})" for k in ("registry", "step", "other"))
        parts = "  ".join(shares)
        print(f"{name:<8}{parts}  total {split['total']:.3f}")


if __name__ == "__main__":
    main()
