"""Replay throughput vs. a plain Polars parse of the same file (issue 2's yardstick).

Usage: python bench/replay.py [--events 10000000] [--file PATH] [--keep]

Generates (once) an NDJSON file with the simulator, then measures in the same run:
  * the time to parse it into columns with Polars given the schema (pl.read_ndjson(path, schema=...)),
  * the time for `tunewatch replay` (validate, aggregate, detect, alert) on it, with peak memory (RSS).
Prints events/s for both and the ratio.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

from tunewatch.schema import RAW_SCHEMA


def _peak_rss_mb(pid: int) -> float:
    """Peak resident memory of a running process (``VmHWM``: its own address space, not its parent's)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000_000, help="approximate number of events")
    parser.add_argument("--file", type=Path, help="use this NDJSON file instead of simulating one")
    parser.add_argument("--keep", action="store_true", help="keep the generated file")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="tw-bench-"))
    path = args.file
    if path is None:
        # simulated in this process (not a child), so that the children's peak memory is the replay's alone
        from tunewatch.simulate import SimulationConfig, Simulator, write_stream

        path = tmp / "events.ndjson"
        rate = 7_000
        minutes = max(10, args.events // rate)
        simulator = Simulator(SimulationConfig(minutes=minutes, events_per_minute=rate, seed=1))
        t = time.perf_counter()
        written = write_stream(simulator, path)
        sim_s = time.perf_counter() - t
        print(
            f"simulate → NDJSON:            {written:>11,} events  {sim_s:7.2f} s  {written / sim_s:>12,.0f} events/s"
            f"  ({path.stat().st_size / 1e9:.2f} GB)"
        )

    t = time.perf_counter()
    n = pl.read_ndjson(path, schema=RAW_SCHEMA).height
    parse_s = time.perf_counter() - t
    print(f"polars parse (schema given):  {n:>11,} events  {parse_s:7.2f} s  {n / parse_s:>12,.0f} events/s")

    t = time.perf_counter()
    cmd = [sys.executable, "-m", "tunewatch.cli.main", "replay", str(path), "-q", "--alerts-out", str(tmp / "a.ndjson")]
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        peak = 0.0
        while proc.poll() is None:
            peak = max(peak, _peak_rss_mb(proc.pid))
            time.sleep(0.2)
        replay_s = time.perf_counter() - t
        if proc.returncode != 0:
            out.seek(0)
            print(out.read().decode(errors="replace"))
            raise SystemExit(proc.returncode)
    print(f"tunewatch replay:             {n:>11,} events  {replay_s:7.2f} s  {n / replay_s:>12,.0f} events/s")
    print(f"replay / parse: {replay_s / parse_s:.2f}x   peak memory (replay process): {peak:,.0f} MB")
    if not args.keep and args.file is None:
        path.unlink()


if __name__ == "__main__":
    main()
