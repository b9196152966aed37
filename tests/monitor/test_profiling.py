"""Profiling: a replay-style block to a file, and on-demand captures of pipeline sections from any thread."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from tests.monitor.conftest import stream
from tunewatch.pipeline.core import Pipeline

pytest.importorskip("pyinstrument", reason="profiling needs pyinstrument")

from tunewatch.monitor.profiling import SectionProfiler, format_for, profile_to


def _run_pipeline(minutes: int = 4) -> None:
    pipe = Pipeline()
    events = stream(minutes=minutes, per_minute=200)
    for start in range(0, len(events), 200):
        pipe.ingest(events[start : start + 200])
    pipe.finish()


@pytest.mark.parametrize(("name", "marker"), [("p.html", "<!DOCTYPE html>"), ("p.txt", "_run_pipeline")])
def test_profile_to_writes_a_report_of_the_block(tmp_path: Path, name: str, marker: str) -> None:
    out = tmp_path / "nested" / name
    with profile_to(out):
        _run_pipeline()
    text = out.read_text()
    assert marker in text and len(text) > 500


def test_profile_to_writes_speedscope_json_even_when_the_block_fails(tmp_path: Path) -> None:
    out = tmp_path / "p.json"
    with pytest.raises(ZeroDivisionError), profile_to(out):
        _run_pipeline(minutes=2)
        _ = 1 / 0
    doc = json.loads(out.read_text())
    assert doc["$schema"].startswith("https://www.speedscope.app") and doc["profiles"]


def test_format_follows_the_suffix() -> None:
    assert [format_for(p) for p in ("a.HTML", "a.json", "a.txt", "a")] == ["html", "speedscope", "text", "text"]


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_sections_are_free_until_armed_then_merged_across_threads() -> None:
    clock = _Clock()
    profiler = SectionProfiler(clock=clock)
    with profiler.section():
        _run_pipeline(minutes=1)
    assert profiler.sections == 0 and not profiler.armed

    profiler.arm(10.0)

    def work() -> None:
        with profiler.section():
            _run_pipeline(minutes=2)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    clock.now += 11  # the capture window is over: later sections are not profiled
    with profiler.section():
        pass
    assert profiler.sections == 2
    report = profiler.collect("text")
    assert report.startswith("tunewatch profile: 2 sections") and "_run_pipeline" in report
    assert profiler.collect("text").startswith("tunewatch profile: no pipeline work")


def test_capture_returns_the_profile_of_the_work_done_while_waiting() -> None:
    profiler = SectionProfiler()
    waited: list[float] = []

    def wait(seconds: float) -> None:  # the service keeps processing batches while the endpoint waits
        waited.append(seconds)
        with profiler.section():
            _run_pipeline(minutes=2)

    html = profiler.capture(5.0, "html", wait=wait)
    assert waited == [5.0] and "<!DOCTYPE html>" in html and len(html) > 1000
    with pytest.raises(ValueError, match="seconds: must be > 0"):
        profiler.arm(0)
