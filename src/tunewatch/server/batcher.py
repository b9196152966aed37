"""Coalesce concurrent ingest requests into one pipeline step.

A pipeline step has a fixed cost of milliseconds whatever its size, so running one step per request would cap
single-event POSTs at a few hundred per second. Requests queue here; one worker thread takes everything queued
(up to ``max_events``), runs it as one step and answers each request with its own report. Under light load a
request runs at once (a step of one); under heavy load steps grow and throughput with them.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from tunewatch.server.decode import Payload
from tunewatch.server.report import IngestReport
from tunewatch.server.service import LiveService


class IngestBatcher:
    """Queues payloads and runs them through ``service`` in coalesced steps on one worker thread."""

    def __init__(self, service: LiveService, *, max_events: int = 50_000) -> None:
        self.service = service
        self.max_events = max_events
        self._queue: list[tuple[Payload, asyncio.Future[IngestReport]]] = []
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tunewatch-ingest")
        self._worker: asyncio.Task[None] | None = None

    @property
    def queued(self) -> int:
        """Requests waiting for the next step."""
        return len(self._queue)

    async def submit(self, payload: Payload) -> IngestReport:
        """Queue one request's events; return its report once the step that ran them is done."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[IngestReport] = loop.create_future()
        self._queue.append((payload, future))
        self.service.metrics.set_queue_depth("http_ingest", len(self._queue))
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            take, events = 0, 0
            while take < len(self._queue) and (take == 0 or events + self._queue[take][0].count <= self.max_events):
                events += self._queue[take][0].count
                take += 1
            step, self._queue = self._queue[:take], self._queue[take:]
            self.service.metrics.set_queue_depth("http_ingest", len(self._queue))
            try:
                reports = await loop.run_in_executor(self._executor, self.service.ingest_payloads, [p for p, _ in step])
            except Exception as exc:  # answer every waiting request, whatever went wrong
                for _, fut in step:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for (_, fut), report in zip(step, reports, strict=True):
                if not fut.done():
                    fut.set_result(report)

    async def close(self) -> None:
        """Finish every queued request (graceful shutdown), then stop the worker thread."""
        if self._worker is not None:
            await self._worker
        self._executor.shutdown(wait=True)
