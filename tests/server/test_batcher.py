"""The ingest batcher: concurrent requests share pipeline steps, each keeps its own report; close drains."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from typing import Any

from tests.conftest import BASE_MS
from tunewatch.server import LiveService
from tunewatch.server.batcher import IngestBatcher
from tunewatch.server.decode import Payload, decode_body
from tunewatch.server.report import IngestReport


class CountingService(LiveService):
    """A live service that records the size of every step it runs."""

    steps: list[int]

    def ingest_payloads(self, payloads: Sequence[Payload]) -> list[IngestReport]:
        self.steps.append(len(payloads))
        return super().ingest_payloads(payloads)


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
