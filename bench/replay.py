"""Replay throughput vs. a plain Polars parse of the same file (issues 2 and 17's yardstick).

Usage: python bench/replay.py [--rate 8000] [--minutes 130 | --events N] [--file PATH] [--keep] [--seed 7]
       [--alerts-out PATH] [--sequential]

Simulates (once) an NDJSON stream at ``--rate`` events/min for ``--minutes`` (issue 17's two cases: ``--rate 185
--minutes 2880``, a two-day stream of ~530 K events in 2,880 one-minute windows, and ``--rate 8000 --minutes 130``,
~1 M events), then measures in the same run:
  * the peer: the time to parse it into columns with Polars given the event schema
    (``pl.read_ndjson(path, schema=RAW_SCHEMA)``, Polars' default threads; Polars refuses a whole file for one
    broken line, so for a file with some, as the independent streams have, it parses a copy without them),
  * ``replay`` (read, validate, aggregate, detect, alert, write alerts) in a fresh process, from its start
    (imports included) to its end, with its peak memory (``VmHWM``) and the latency of each pipeline step (one
    chunk of the file read and run through every stage: p50/p95/p99).
  * the fixed start-up cost, on the file's first 1,000 lines, each in a fresh process: ``tunewatch replay``
    (``python -m tunewatch.cli.main replay``, the command line's imports included) and ``replay_files`` as above
    (imports, Numba's start, rule loading, the first batch's compiled kernels; what every replay pays whatever
    its size).
Prints events/s for both and the ratio (target: replay <= 3x the parse, at both volumes), and beside each wall
time the CPU time (user + system) of its process: on a machine shared with other work the wall times move with
the load, the CPU times much less (the parse runs on every core, so its CPU time exceeds its wall time).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgspec
import numpy as np
import polars as pl

from tunewatch.schema import RAW_SCHEMA

#: the child process: replay_files as `tunewatch replay` runs it, timing each step; prints one JSON line
_CHILD = """
import json, sys, time
from pathlib import Path
from tunewatch.pipeline.process_exit import collect_then_freeze_at_exit
from tunewatch.pipeline.replay import replay_files

collect_then_freeze_at_exit()  # as the replay command does

steps = []
last = time.perf_counter()

def progress(_received: int) -> None:
    global last
    now = time.perf_counter()
    steps.append(now - last)
    last = now

with open(sys.argv[2], "wb") as out:
    summary = replay_files([sys.argv[1]], alerts_out=out, progress=progress, read_ahead_thread=sys.argv[3] == "1")
peak = next(int(l.split()[1]) for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM:"))
print(json.dumps({"received": summary.counters.received, "alerts": len(summary.alerts), "windows":
                  summary.counters.windows, "steps": steps, "peak_mb": peak / 1024, "series": summary.series}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=8000, help="simulated events per minute")
    parser.add_argument("--minutes", type=int, default=130, help="simulated minutes")
    parser.add_argument("--events", type=int, help="approximate number of events instead of --minutes")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--file", type=Path, help="use this NDJSON file instead of simulating one")
    parser.add_argument("--keep", action="store_true", help="keep the generated file")
    parser.add_argument("--alerts-out", type=Path, help="write the replay's alert changes (NDJSON) here")
    parser.add_argument("--sequential", action="store_true", help="every stage in one thread (A/B)")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="tw-bench-"))
    path = args.file
    if path is None:
        # simulated in this process (not a child), so that the child's peak memory is the replay's alone
        from tunewatch.simulate import SimulationConfig, Simulator, write_stream

        path = tmp / "events.ndjson"
        minutes = max(10, int(args.events // args.rate)) if args.events else args.minutes
        config = SimulationConfig(minutes=minutes, events_per_minute=args.rate, seed=args.seed)
        t = time.perf_counter()
        written = write_stream(Simulator(config), path)
        sim_s = time.perf_counter() - t
        print(
            f"simulate → NDJSON:            {written:>11,} events  {sim_s:7.2f} s  {written / sim_s:>12,.0f} events/s"
            f"  ({path.stat().st_size / 1e9:.2f} GB, {args.rate:g}/min for {minutes} min)"
        )

    peer_path, left_out = path, 0
    try:
        n, parse_s, parse_cpu = _parse(path)
    except pl.exceptions.ComputeError:  # Polars refuses the whole file for one broken line
        peer_path, left_out = _parseable(path, tmp)
        n, parse_s, parse_cpu = _parse(peer_path)
    print(
        f"peer: polars parse (schema):  {n:>11,} events  {parse_s:7.2f} s  {n / parse_s:>12,.0f} events/s"
        f"  (CPU {parse_cpu:.2f} s)" + (f"  [a copy without the {left_out:,} lines Polars refuses]" if left_out else "")
    )
    if peer_path != path:
        peer_path.unlink()

    alerts = args.alerts_out or tmp / "alerts.ndjson"
    t, cpu = time.perf_counter(), _cpu(resource.RUSAGE_CHILDREN)
    child = [sys.executable, "-c", _CHILD, str(path), str(alerts), "0" if args.sequential else "1"]
    done = subprocess.run(child, capture_output=True, text=True)
    replay_s, replay_cpu = time.perf_counter() - t, _cpu(resource.RUSAGE_CHILDREN) - cpu
    if done.returncode != 0:
        print(done.stdout + done.stderr)
        raise SystemExit(done.returncode)
    out = json.loads(done.stdout.strip().splitlines()[-1])
    steps = np.asarray(out["steps"]) * 1000
    p50, p95, p99 = np.percentile(steps, [50, 95, 99]) if steps.size else (0.0, 0.0, 0.0)
    print(
        f"replay (process, end to end): {n:>11,} events  {replay_s:7.2f} s  {n / replay_s:>12,.0f} events/s"
        f"  (CPU {replay_cpu:.2f} s; {out['windows']:,} windows, {out['series']:,} series, {out['alerts']} alert "
        "changes)"
    )
    print(
        f"replay / parse: {replay_s / parse_s:.2f}x (target <= 3; CPU {replay_cpu / parse_cpu:.2f}x)   steps: "
        f"{steps.size} of p50 {p50:.0f} ms, p95 {p95:.0f} ms, p99 {p99:.0f} ms   peak memory (replay process): "
        f"{out['peak_mb']:,.0f} MB"
    )
    _startup(path, tmp)
    if not args.keep and args.file is None:
        path.unlink()


def _parse(path: Path) -> tuple[int, float, float]:
    """The peer: events, wall and CPU seconds of a Polars parse of ``path`` with the event schema."""
    t, cpu = time.perf_counter(), _cpu(resource.RUSAGE_SELF)
    n = pl.read_ndjson(path, schema=RAW_SCHEMA).height
    return n, time.perf_counter() - t, _cpu(resource.RUSAGE_SELF) - cpu


def _parseable(path: Path, tmp: Path) -> tuple[Path, int]:
    """A copy of ``path`` without the lines that are not one JSON object (a stream with broken lines, as
    ``bench/independent_stream.py`` writes them), made before the peer's clock starts, and how many were left
    out."""
    decoder = msgspec.json.Decoder()
    copy, left_out = tmp / "peer.ndjson", 0
    with path.open("rb") as src, copy.open("wb") as dst:
        for line in src:
            try:
                ok = isinstance(decoder.decode(line), dict)
            except msgspec.DecodeError:
                ok = False
            if ok:
                dst.write(line)
            else:
                left_out += bool(line.strip())
    return copy, left_out


#: lines of the input replayed to measure the fixed start-up cost
_STARTUP_LINES = 1000


def _startup(path: Path, tmp: Path) -> None:
    """Print the fixed cost of a replay: ``tunewatch replay`` and ``replay_files`` on the first lines of ``path``."""
    head = tmp / "head.ndjson"
    with path.open("rb") as src, head.open("wb") as dst:
        dst.writelines(itertools.islice(src, _STARTUP_LINES))
    commands = {
        "tunewatch replay": [sys.executable, "-m", "tunewatch.cli.main", "replay", str(head), "--quiet",
                             "--alerts-out", os.devnull],
        "replay_files": [sys.executable, "-c", _CHILD, str(head), os.devnull, "1"],
    }  # fmt: skip
    timings = []
    for name, command in commands.items():
        t, cpu = time.perf_counter(), _cpu(resource.RUSAGE_CHILDREN)
        done = subprocess.run(command, capture_output=True, text=True)
        wall, used = time.perf_counter() - t, _cpu(resource.RUSAGE_CHILDREN) - cpu
        if done.returncode != 0:
            print(done.stdout + done.stderr)
            raise SystemExit(done.returncode)
        timings.append(f"{name} {wall:.2f} s (CPU {used:.2f} s)")
    head.unlink()
    print(f"start-up (first {_STARTUP_LINES:,} lines, fresh process): " + ";  ".join(timings))


def _cpu(who: int) -> float:
    """User + system CPU seconds of this process (``RUSAGE_SELF``) or of its finished children."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
