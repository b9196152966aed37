"""Pipelined ingest steps on a real server (uvicorn on loopback): a request is answered once its events are
validated, counted and durable, before the stream advances with them; queries made after the answer wait for
that advance; a snapshot taken meanwhile covers exactly the steps the stream has advanced with."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import BASE_MS
from tests.server.servers import uvicorn_thread
from tunewatch.pipeline.snapshot import SnapshotFile
from tunewatch.server import LiveService, create_app
from tunewatch.server.decode import decode_body
from tunewatch.server.settings import ServerSettings
from tunewatch.validate.validator import ValidationResult

Play = Callable[..., dict[str, Any]]
NOW_S = BASE_MS / 1000 + 3600


class GatedService(LiveService):
    """A live service whose stream advances only when the test opens the gate (the answers do not wait for it)."""

    gate: threading.Event
    advancing: threading.Event

    def _advance(self, v: ValidationResult, started: Sequence[float]) -> None:
        self.advancing.set()
        if not self.gate.wait(60):
            raise TimeoutError("the test never opened the gate")
        super()._advance(v, started)


def _gated(db: str | Path, **settings: Any) -> GatedService:
    service = GatedService(
        clock=lambda: NOW_S, db=db, settings=ServerSettings(auth=False, wal_fsync="always", **settings)
    )
    service.gate, service.advancing = threading.Event(), threading.Event()
    return service


def _post(base: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    r = httpx.post(base + "/api/v1/events", content=json.dumps(events), timeout=30,
                   headers={"content-type": "application/json"})  # fmt: skip
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_answer_before_the_stream_advances_and_queries_wait_for_it(tmp_path: Path, play: Play) -> None:
    service = _gated(tmp_path / "tw.db")
    with uvicorn_thread(create_app(service)) as base:
        # a minute of events, and events five minutes later that close it once the stream advances with them;
        # the answer comes while the stream cannot advance (the gate is closed): it does not wait for processing
        events = [play(i, BASE_MS + i * 1000) for i in range(20)]
        events += [play(100 + i, BASE_MS + 5 * 60_000 + i) for i in range(10)]
        assert _post(base, events)["accepted"] == 30
        assert service.advancing.wait(30)
        seen: dict[str, Any] = {}
        query = threading.Thread(target=lambda: seen.update(httpx.get(base + "/healthz", timeout=60).json()))
        query.start()  # asked while the gate is closed: it waits until the stream has advanced
        service.gate.set()
        query.join(60)
        assert seen["received"] == 30 and seen["accepted"] == 30
        assert seen["windows"] >= 1  # the first window closed: the query saw the advanced stream


def test_with_overlap_the_next_step_is_counted_while_the_stream_advances(tmp_path: Path, play: Play) -> None:
    service = _gated(tmp_path / "tw.db", overlap_steps=True)
    with uvicorn_thread(create_app(service)) as base:
        assert _post(base, [play(i, BASE_MS + i) for i in range(10)])["accepted"] == 10
        assert service.advancing.wait(30)
        # the stream has not advanced with the first step, yet the second is validated, counted and answered
        second = _post(base, [play(i, BASE_MS + i) for i in range(5, 15)])
        assert (second["received"], second["accepted"], second["duplicates"]) == (10, 5, 5)
        service.gate.set()
        status = httpx.get(base + "/healthz", timeout=60).json()
        assert (status["received"], status["accepted"], status["duplicates"]) == (20, 15, 5)
        assert service.pipeline.processor.buffered_events == 15  # both steps advanced the stream, in order


def test_a_snapshot_waits_for_the_step_the_stream_has_not_advanced_with(tmp_path: Path, play: Play) -> None:
    """A checkpoint asked for while an answered step has not advanced the stream waits for it: the snapshot holds
    the validator and the open windows at the same step, and a restart from it needs no replay and has the same
    open windows and remembered ids."""
    db = tmp_path / "tw.db"
    service = _gated(db)
    service.gate.set()
    with uvicorn_thread(create_app(service)) as base:
        for b in range(8):  # one request per minute of event time: windows close, snapshots fall due
            assert _post(base, [play(b * 10 + i, BASE_MS + b * 60_000 + i) for i in range(10)])["accepted"] == 10
        service.settle()
        service.gate.clear()
        service.advancing.clear()
        assert _post(base, [play(1000 + i, BASE_MS + 8 * 60_000 + i) for i in range(10)])["accepted"] == 10
        assert service.advancing.wait(30)
        saver = threading.Thread(target=service.checkpoint)
        saver.start()  # asked while the last step has not advanced the stream
        service.gate.set()
        saver.join(60)
        buffered = service.pipeline.processor.buffered_events
        assert service.status()["received"] == 90
    snapshot = SnapshotFile.beside(db).load()
    assert snapshot is not None and snapshot.position["wal_seq"] == 9
    restarted = LiveService(clock=lambda: NOW_S, db=db, settings=ServerSettings(auth=False))
    assert restarted.replayed == 0  # the snapshot covers every acknowledged step
    assert restarted.pipeline.processor.buffered_events == buffered > 0  # the last step's events included
    again = json.dumps([play(1000 + i, BASE_MS + 8 * 60_000 + i) for i in range(10)]).encode()
    report = restarted.ingest_payloads([decode_body(again, "application/json")])[0]
    assert (report.received, report.duplicates) == (10, 10)


class HeldService(LiveService):
    """A live service whose first step is held in its validation until the test opens the gate; it records each
    advance of the stream (how many counted steps it took, how many events they had received)."""

    gate: threading.Event
    holding: threading.Event
    advances: list[tuple[int, int]]

    def _account_payloads(self, *args: Any, **kwargs: Any) -> Any:
        self.holding.set()
        if not self.gate.wait(60):
            raise TimeoutError("the test never opened the gate")
        return super()._account_payloads(*args, **kwargs)

    def _advance(self, v: ValidationResult, started: Sequence[float]) -> None:
        self.advances.append((len(started), v.received))
        super()._advance(v, started)


def _held(db: str | Path, **settings: Any) -> HeldService:
    service = HeldService(
        clock=lambda: NOW_S, db=db, settings=ServerSettings(auth=False, wal_fsync="always", **settings)
    )
    service.gate, service.holding, service.advances = threading.Event(), threading.Event(), []
    return service


def _three_requests_in_two_steps(service: HeldService, play: Play) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Requests A, then B and C while A's step is held (B and C wait for the next step); the answers, and a
    query made after them. A's events are in the first minute, B's and C's five minutes later: once the stream
    has advanced with them, the first window is closed."""
    app = create_app(service)
    with uvicorn_thread(app) as base:
        answers: list[dict[str, Any]] = []
        bodies = [[play(i, BASE_MS + i * 1000) for i in range(20)]]
        bodies += [[play(100 * k + i, BASE_MS + 5 * 60_000 + i) for i in range(5)] for k in (1, 2)]
        threads = [threading.Thread(target=lambda b=b: answers.append(_post(base, b))) for b in bodies]
        threads[0].start()
        assert service.holding.wait(30)
        for t in threads[1:]:
            t.start()
        assert app.ingest_handler is not None
        batcher = app.ingest_handler.batcher
        deadline = time.monotonic() + 30
        while batcher.queued < 2:  # B and C wait for the step after A's
            assert time.monotonic() < deadline
            time.sleep(0.01)
        service.gate.set()
        for t in threads:
            t.join(60)
        status = httpx.get(base + "/healthz", timeout=60).json()
    return answers, status


def test_steps_counted_while_requests_wait_advance_the_stream_together(tmp_path: Path, play: Play) -> None:
    """A step ends with requests waiting: its advance is deferred, and the next step's advance joins it once no
    request waits; every request is answered as before, and a query after the answers reads the advanced stream."""
    service = _held(tmp_path / "tw.db", advance_every_s=3600)
    answers, status = _three_requests_in_two_steps(service, play)
    assert sorted(a["accepted"] for a in answers) == [5, 5, 20]
    assert service.advances == [(2, 30)]  # two counted steps, one advance
    assert (status["received"], status["accepted"]) == (30, 30)
    assert status["windows"] >= 1  # the first window closed: the query read the stream advanced with all three
    assert service.pipeline.processor.buffered_events == 10  # B's and C's events, in the open window


def test_without_deferral_each_step_advances_the_stream_on_its_own(tmp_path: Path, play: Play) -> None:
    service = _held(tmp_path / "tw.db", advance_every_s=0)
    answers, status = _three_requests_in_two_steps(service, play)
    assert sorted(a["accepted"] for a in answers) == [5, 5, 20]
    assert service.advances == [(1, 20), (1, 10)]
    assert status["windows"] >= 1 and service.pipeline.processor.buffered_events == 10


def test_a_query_hands_deferred_steps_on(tmp_path: Path, play: Play) -> None:
    """Steps whose advance is deferred advance before a query reads the state, and before a snapshot."""
    db = tmp_path / "tw.db"
    service = LiveService(clock=lambda: NOW_S, db=db, settings=ServerSettings(auth=False, advance_every_s=3600))
    reports: list[Any] = []
    body = json.dumps([play(i, BASE_MS + i) for i in range(10)]).encode()
    service.ingest_payloads([decode_body(body, "application/json")], lambda r, durable: reports.extend(r))
    assert reports[0].accepted == 10
    assert not service.settled and service.pipeline.processor.buffered_events == 0  # counted, not yet advanced
    assert service.status()["accepted"] == 10
    assert service.settled and service.pipeline.processor.buffered_events == 10
    later = json.dumps([play(100 + i, BASE_MS + 100 + i) for i in range(5)]).encode()
    service.ingest_payloads([decode_body(later, "application/json")], lambda r, durable: None)
    service.checkpoint()  # the snapshot covers the deferred step: a restart replays nothing and has its events
    restarted = LiveService(clock=lambda: NOW_S, db=db, settings=ServerSettings(auth=False))
    assert restarted.replayed == 0 and restarted.pipeline.processor.buffered_events == 15
