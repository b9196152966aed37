"""Replay's alerts do not depend on how many windows one pipeline step closes."""

from __future__ import annotations

from pathlib import Path

from tunewatch.alert.model import Alert
from tunewatch.pipeline.replay import replay_files
from tunewatch.process.quality import QUALITY_COLUMNS
from tunewatch.simulate import SimulationConfig, Simulator, write_stream


def _detected(alerts: list[Alert]) -> list[dict[str, object]]:
    """Alert changes of the metric rules. Data-quality KPIs are left out: a batch's duplicates, undecodable lines
    and late events are booked to the windows the batch covers (docs/benchmarks.md, issue 17), which depends on
    how much of the file one step reads."""
    return [a.to_dict() for a in alerts if a.labels.get("metric") not in QUALITY_COLUMNS]


def test_alerts_are_identical_whether_a_step_closes_one_window_or_all_of_them(tmp_path: Path) -> None:
    path = tmp_path / "low.ndjson"
    config = SimulationConfig(minutes=240, events_per_minute=250, seed=3, warmup_minutes=60)
    write_stream(Simulator(config), path)
    size = path.stat().st_size
    whole = replay_files([path], chunk_bytes=2 * size)  # one step: every window of the file at once
    small = replay_files([path], chunk_bytes=size // 400)  # a step per ~0.6 window
    assert whole.counters.windows == small.counters.windows >= 240
    detected = _detected(whole.alerts)
    assert len(detected) >= 10, "the simulated incidents raise alerts"
    assert detected == _detected(small.alerts)
    c, d = whole.counters, small.counters
    assert (c.received, c.accepted, c.rejected, c.duplicates) == (d.received, d.accepted, d.rejected, d.duplicates)


def test_the_stage_threads_change_nothing(tmp_path: Path) -> None:
    """Reading and validating ahead, processing and detecting each in a thread of its own give the alerts,
    quarantine and counts of replaying in one thread."""
    path = tmp_path / "dirty.ndjson"
    config = SimulationConfig(minutes=90, events_per_minute=400, seed=11, warmup_minutes=30, dirty_rate=0.02)
    write_stream(Simulator(config), path)
    size = path.stat().st_size
    outs = {}
    for ahead in (True, False):
        alerts, quarantine = tmp_path / f"alerts-{ahead}.ndjson", tmp_path / f"quarantine-{ahead}.ndjson"
        with alerts.open("wb") as a, quarantine.open("wb") as q:
            summary = replay_files([path], alerts_out=a, quarantine_out=q, chunk_bytes=size // 7,
                                   read_ahead_thread=ahead)  # fmt: skip
        c = summary.counters
        outs[ahead] = (alerts.read_bytes(), quarantine.read_bytes(), c.received, c.accepted, c.rejected, c.windows)
    assert outs[True][3] > 0 and outs[True][4] > 0, "the stream has accepted and rejected events"
    assert outs[True] == outs[False]
