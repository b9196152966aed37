"""Window aggregation throughput: the reference Polars group-bys vs. the compiled kernels, in one run.

Usage: python bench/aggregate.py [--events 2000000] [--repeat 2]

Simulates the events once, validates them in the replay's batch size (about 16 MB of NDJSON, ~45,000
events), then times ``MusicDataProcessor.process(batch, final=False)`` over every batch plus the final flush,
for each engine, alternating the engines ``--repeat`` times (the machine may be shared: alternating keeps the
comparison fair). Prints events/s of process(), the time per million events of process() and of its
aggregation step alone (every dimension set of the closing windows), and checks that both engines produced
the same metrics.
"""

from __future__ import annotations

import argparse
import time

import polars as pl

from tunewatch.process import MusicDataProcessor
from tunewatch.schema import DIMENSION_FIELDS
from tunewatch.simulate import SimulationConfig, Simulator
from tunewatch.validate import EnterpriseDataValidator
from tunewatch.validate.validator import ValidationResult

ENGINES = ("reference", "compiled")
KEYS = ["window_start", "dimset", *DIMENSION_FIELDS]


def _batches(events: int, batch_events: int) -> list[ValidationResult]:
    rate = 7_000
    sim = Simulator(SimulationConfig(minutes=max(10, events // rate), events_per_minute=rate, seed=1))
    raw = pl.concat(list(sim.blocks()))
    validator = EnterpriseDataValidator()
    return [validator.validate(raw.slice(i, batch_events)) for i in range(0, raw.height, batch_events)]


class _TimedProcessor(MusicDataProcessor):
    """Adds up the time spent in the aggregation step."""

    aggregate_s = 0.0

    def _aggregate(self, events: pl.DataFrame) -> tuple[list[pl.DataFrame], dict[str, pl.DataFrame]]:
        start = time.perf_counter()
        try:
            return super()._aggregate(events)
        finally:
            self.aggregate_s += time.perf_counter() - start


def _run(engine: str, batches: list[ValidationResult]) -> tuple[float, float, pl.DataFrame]:
    processor = _TimedProcessor(engine="compiled" if engine == "compiled" else "reference")
    frames = []
    start = time.perf_counter()
    for batch in batches:
        frames.append(processor.process(batch, final=False).metrics)
    frames.append(processor.flush().metrics)
    return time.perf_counter() - start, processor.aggregate_s, pl.concat(frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2_000_000, help="approximate number of events")
    parser.add_argument("--batch", type=int, default=45_000, help="events per validated batch")
    parser.add_argument("--repeat", type=int, default=2, help="timed runs per engine (alternating)")
    args = parser.parse_args()

    t = time.perf_counter()
    batches = _batches(args.events, args.batch)
    n = sum(b.accepted for b in batches)
    print(f"simulate + validate: {n:,} accepted events in {len(batches)} batches, {time.perf_counter() - t:.1f} s")

    warm = batches[:1]
    for engine in ENGINES:  # compile / load the Numba cache and warm Polars before timing
        _run(engine, warm)
    best: dict[str, tuple[float, float]] = {}
    metrics: dict[str, pl.DataFrame] = {}
    print("engine      process()  events/s      process s/M  aggregation s/M")
    for _ in range(args.repeat):
        for engine in ENGINES:
            seconds, aggregate_s, metrics[engine] = _run(engine, batches)
            best[engine] = min(best.get(engine, (seconds, aggregate_s)), (seconds, aggregate_s))
            print(
                f"{engine:10s} {seconds:7.2f} s  {n / seconds:>11,.0f}  {seconds / n * 1e6:11.2f}"
                f"  {aggregate_s / n * 1e6:15.2f}"
            )
    for engine in ENGINES:
        seconds, aggregate_s = best[engine]
        print(f"best {engine:9s}  process() {seconds / n * 1e6:5.2f} s/M, aggregation {aggregate_s / n * 1e6:5.2f} s/M")
    before, after = best["reference"], best["compiled"]
    print(f"speed-up: process() {before[0] / after[0]:.2f}x, aggregation {before[1] / after[1]:.2f}x")

    ref = metrics["reference"].sort(KEYS, nulls_last=True)
    new = metrics["compiled"].sort(KEYS, nulls_last=True)
    differing = [c for c in ref.columns if not ref.get_column(c).equals(new.get_column(c))]
    print(f"metric rows: {ref.height:,}; columns not bit-identical: {differing or 'none'}")


if __name__ == "__main__":
    main()
