"""Helpers of the distributed tests: a small simulated stream and worker subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from functools import cache
from typing import Any

import polars as pl

from tunewatch.distributed.commit import EntryCommitter
from tunewatch.distributed.connection import RedisClient
from tunewatch.ingest.batch import RawBatch, conform
from tunewatch.simulate import SimulationConfig, Simulator


@cache
def _frames() -> tuple[pl.DataFrame, ...]:
    sim = Simulator(SimulationConfig(minutes=20, events_per_minute=300, seed=1))
    return tuple(conform(frame) for frame in sim.blocks(5))


def simulated_batches() -> Iterator[RawBatch]:
    """20 simulated minutes (about 7,000 events, some dirty) as raw text batches."""
    for i, frame in enumerate(_frames()):
        yield RawBatch(frame=frame, source=f"sim-{i}")


def start_worker(redis_args: Sequence[str], *args: str) -> subprocess.Popen[str]:
    """``tunewatch cluster worker`` in a subprocess (stdout: its JSON summary)."""
    cmd = [sys.executable, "-m", "tunewatch.cli.distributed_cmd", "worker", *redis_args, *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def summary_of(proc: subprocess.Popen[str], timeout: float = 60) -> dict[str, Any]:
    """Wait for a worker to exit by itself and parse its summary line."""
    stdout, stderr = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"worker failed ({proc.returncode}): {stderr[-2000:]}"
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return result


def group_totals(client: RedisClient, group: str, partitions: Sequence[int]) -> dict[int, dict[str, int]]:
    """The accounting hash of every partition of ``group``."""
    committer = EntryCommitter(client, group)
    return {p: committer.totals(p) for p in partitions}
