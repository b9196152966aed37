"""bench/replay.py's peer parses a stream with broken lines (Polars refuses such a file whole) as a copy
without them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import polars as pl
import pytest

from tests.validate.corpus import line
from tunewatch.schema import RAW_SCHEMA

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "replay.py"


def test_the_peer_parses_a_copy_without_the_broken_lines(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("bench_replay", SCRIPT)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    events = tmp_path / "events.ndjson"
    lines = [
        line(event_id="a"),
        b'{"event_id": "broken-0", "ts": ',
        line(event_id="b"),
        b"",
        b"[1]",
        line(event_id="c"),
    ]
    events.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(pl.exceptions.ComputeError):
        bench._parse(events)
    copy, left_out = bench._parseable(events, tmp_path)
    assert left_out == 2
    assert copy.read_bytes() == b"\n".join([lines[0], lines[2], lines[5]]) + b"\n"
    n, wall, cpu = bench._parse(copy)
    assert n == 3 and wall > 0 and cpu >= 0
    assert pl.read_ndjson(copy, schema=RAW_SCHEMA)["event_id"].to_list() == ["a", "b", "c"]
