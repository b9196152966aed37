"""Validation throughput on 1M simulated events, clean and 10 % dirty, on one core.

Usage: ``python bench/validate.py [--events 1000000] [--dir /tmp/tunewatch-bench] [--threads 1]``

For each stream it prints: the plain ``pl.read_ndjson(path, schema=RAW_SCHEMA)`` parse time (the reference),
tunewatch's own reader (typed fast path, byte screens, exact decoding where needed), and the validator alone on
the decoded batches (excluding parsing), as events per second. Times are CPU seconds of this process
(``time.process_time``), which with one Polars thread is one core's work and is not inflated when other
processes compete for the machine; wall-clock events/s are printed beside them.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=1_000_000, help="events per stream (default 1M)")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/tunewatch-bench"), help="where streams are cached")
    parser.add_argument("--threads", type=int, default=1, help="Polars threads (default 1: one core)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best is reported")
    return parser.parse_args()


ARGS = _args()
os.environ["POLARS_MAX_THREADS"] = str(ARGS.threads)  # must be set before Polars is imported

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from tunewatch.ingest.batch import RawBatch  # noqa: E402
from tunewatch.ingest.readers import read_events  # noqa: E402
from tunewatch.schema import RAW_SCHEMA  # noqa: E402
from tunewatch.simulate import SimulationConfig, Simulator, write_stream  # noqa: E402
from tunewatch.validate import EnterpriseDataValidator  # noqa: E402


def make_stream(path: Path, events: int, dirty_rate: float) -> Path:
    """Write (once) a simulated stream cut to exactly ``events`` lines."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    per_minute = 20_000
    minutes = math.ceil(events / (per_minute * 0.8)) + 1
    config = SimulationConfig(minutes=minutes, events_per_minute=per_minute, dirty_rate=dirty_rate, incidents=False)
    full = path.with_suffix(".full.ndjson")
    written = write_stream(Simulator(config), full)
    if written < events:
        raise SystemExit(f"simulator wrote {written} events, fewer than {events}")
    data = full.read_bytes()
    newlines = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
    path.write_bytes(data[: int(newlines[events - 1]) + 1])
    full.unlink()
    return path


def best_of(repeat: int, fn: object) -> float:
    """Best CPU time of ``repeat`` calls."""
    assert callable(fn)
    times = []
    for _ in range(repeat):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return min(times)


def validate_all(batches: list[RawBatch]) -> tuple[float, float, tuple[int, int, int, int]]:
    """Validate the batches with a fresh validator: CPU and wall seconds in ``validate``, and the counts."""
    validator = EnterpriseDataValidator()
    spent = wall = 0.0
    received = accepted = rejected = duplicates = 0
    for batch in batches:
        start, start_wall = time.process_time(), time.perf_counter()
        result = validator.validate(batch)
        spent += time.process_time() - start
        wall += time.perf_counter() - start_wall
        received += result.received
        accepted += result.accepted
        rejected += result.rejected_count
        duplicates += result.duplicates
    return spent, wall, (received, accepted, rejected, duplicates)


def main() -> int:
    """Run the benchmark and print one table."""
    n = ARGS.events
    print(f"tunewatch validation benchmark: {n:,} events per stream, POLARS_MAX_THREADS={ARGS.threads}")
    print("CPU seconds (one core); events/s = events / CPU seconds, wall-clock figure in brackets")
    print(f"{'stream':<8} {'polars parse':>13} {'tw reader':>11} {'validate':>10} {'validate ev/s':>24} "
          f"{'read+validate ev/s':>19}  received / accepted / rejected / duplicates")  # fmt: skip
    for name, rate in (("clean", 0.0), ("dirty10", 0.10)):
        path = make_stream(ARGS.dir / f"{name}-{n}.ndjson", n, rate)
        parse = best_of(ARGS.repeat, lambda p=path: pl.read_ndjson(p, schema=RAW_SCHEMA))
        reader = best_of(ARGS.repeat, lambda p=path: list(read_events(p)))
        batches = list(read_events(path))
        runs = [validate_all(batches) for _ in range(ARGS.repeat)]
        spent = min(r[0] for r in runs)
        wall = min(r[1] for r in runs)
        counts = runs[0][2]
        assert counts[0] == counts[1] + counts[2] + counts[3], "accounting invariant broken"
        print(
            f"{name:<8} {parse:>12.2f}s {reader:>10.2f}s {spent:>9.2f}s "
            f"{counts[0] / spent:>12,.0f} ({counts[0] / wall:>9,.0f}) "
            f"{counts[0] / (reader + spent):>19,.0f}  {' / '.join(f'{c:,}' for c in counts)}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
