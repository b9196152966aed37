"""The ingest batcher: concurrent requests share pipeline steps, each keeps its own report; close drains."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

import pytest

from tests.conftest import BASE_MS
from tunewatch.server import LiveService
from tunewatch.server.batcher import IngestBatcher
from tunewatch.server.decode import Payload, decode_body
from tunewatch.server.report import IngestReport
from tunewatch.validate.validator import ValidationResult


class CountingService(LiveService):
    """A live service that records the size of every step it runs."""

    steps: list[int]

    def ingest_payloads(
        self, payloads: Sequence[Payload], on_ready: Callable[[list[IngestReport], Future[None]], None] | None = None
    ) -> list[IngestReport]:
        self.steps.append(len(payloads))
        return super().ingest_payloads(payloads, on_ready)


def test_concurrent_requests_are_coalesced_and_drained_on_close(play: Callable[..., dict[str, Any]]) -> None:
    service = CountingService(clock=lambda: BASE_MS / 1000 + 600, db=":memory:")
    service.steps = []
    bodies = [json.dumps([play(i, BASE_MS + i), play(i, BASE_MS + i)]).encode() for i in range(40)]

    async def scenario() -> list[IngestReport]:
        batcher = IngestBatcher(service, max_events=30)
        tasks = [asyncio.create_task(batcher.submit(decode_body(b, "application/json"))) for b in bodies]
        await asyncio.sleep(0)  # every request is queued before the first step ends
        await batcher.close()  # graceful shutdown: queued requests still get their answers
        return [t.result() for t in tasks]

    reports = asyncio.run(scenario())
    assert [(r.received, r.accepted, r.duplicates) for r in reports] == [(2, 1, 1)] * 40
    assert sum(service.steps) == 40 and len(service.steps) < 40 and max(service.steps) <= 15


def test_a_lingering_worker_is_woken_by_each_arrival(play: Callable[..., dict[str, Any]]) -> None:
    """With an hour of linger and of quiet, the worker still runs each wave as soon as its last request comes
    (each submit wakes it; it does not wait for a timeout); closing ends its wait for a wave that never comes."""
    service = CountingService(clock=lambda: BASE_MS / 1000 + 600, db=":memory:")
    service.steps = []
    clients, rounds = 4, 3

    async def scenario() -> list[IngestReport]:
        batcher = IngestBatcher(service, linger_s=3600.0, quiet_s=3600.0)

        async def client(c: int) -> list[IngestReport]:
            reports = []
            for r in range(rounds):
                body = json.dumps([play(c * 100 + r, BASE_MS + r)]).encode()
                reports.append(await batcher.submit(decode_body(body, "application/json")))
                await asyncio.sleep(0.001 * c)  # come back at different moments, on the loop's clock
            return reports

        results = await asyncio.gather(*(client(c) for c in range(clients)))
        await batcher.close()  # the worker lingers for a wave that never comes: closing ends the wait
        return [r for rs in results for r in rs]

    reports = asyncio.run(scenario())
    assert [(r.received, r.accepted) for r in reports] == [(1, 1)] * clients * rounds
    assert service.steps == [clients] * rounds


class AdvanceFailsOnce(LiveService):
    """A live service whose first advance of the stream fails (after its step was counted)."""

    failed = False

    def _advance(self, v: ValidationResult, t0: float) -> None:
        if not self.failed:
            self.failed = True
            raise RuntimeError("processing broke")
        super()._advance(v, t0)


def test_a_failed_advance_is_logged_and_the_counted_requests_are_answered(
    play: Callable[..., dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    """The requests of a step whose events were counted (and made durable) are answered as counted even when the
    stream's advance with them then fails; the failure is logged, and the next step runs as usual."""
    service = AdvanceFailsOnce(clock=lambda: BASE_MS / 1000 + 600, db=":memory:")

    async def scenario() -> list[IngestReport]:
        batcher = IngestBatcher(service)
        reports = []
        for r in range(2):
            body = json.dumps([play(r * 10 + i, BASE_MS + r) for i in range(3)]).encode()
            reports.append(await batcher.submit(decode_body(body, "application/json")))
        await batcher.close()
        return reports

    with caplog.at_level(logging.ERROR, logger="tunewatch.server.service"):
        reports = asyncio.run(scenario())
    assert [(r.received, r.accepted) for r in reports] == [(3, 3), (3, 3)]
    assert "pipeline step failed while advancing the stream" in caplog.text
    assert service.settled and service.status()["accepted"] == 6
