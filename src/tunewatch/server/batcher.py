"""Coalesce concurrent ingest requests into one pipeline step.

A pipeline step has a fixed cost of milliseconds whatever its size, so running one step per request would cap
single-event POSTs at a few hundred per second. Requests queue here; one worker thread takes everything queued
(up to ``max_events``), runs it as one step and answers each request with its own report. Under light load a
request runs at once (a step of one); under heavy load steps grow and throughput with them.

When a step of several requests ends, its answers bring the next wave of requests from the same clients. Taking
the first few of that wave alone would cost a whole step for them and split the clients into a small and a large
group for good, so the worker first waits for as many requests as were in flight (the step's and those queued
meanwhile) while they keep arriving: at most ``linger_s``, and no longer than ``quiet_s`` without a new one. The
wait sleeps until the next arrival or timeout (it does not poll the event loop), so the requests it waits for are
read and decoded at full speed.

A step's requests are answered as soon as its events are validated, counted, their rejected events quarantined
and their WAL record durable; the stream advances with the step (processing, detection, alerts) on another
thread while the answers go out and the clients' next requests are read; the next step starts once that advance
is done, or at once with ``overlap_steps`` (see :meth:`LiveService.ingest_payloads`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import Future, ThreadPoolExecutor

from tunewatch.server.decode import Payload
from tunewatch.server.report import IngestReport
from tunewatch.server.service import LiveService

logger = logging.getLogger(__name__)
_Queued = tuple[Payload, "asyncio.Future[IngestReport]"]


class IngestBatcher:
    """Queues payloads and runs them through ``service`` in coalesced steps on one worker thread."""

    def __init__(
        self, service: LiveService, *, max_events: int = 50_000, linger_s: float = 0.01, quiet_s: float = 0.002
    ) -> None:
        self.service = service
        self.max_events = max_events
        self.linger_s = linger_s
        self.quiet_s = quiet_s
        self._queue: list[_Queued] = []
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tunewatch-ingest")
        self._worker: asyncio.Task[None] | None = None
        self._arrival: asyncio.Future[bool] | None = None  # resolved by the next submit while the worker lingers
        self._closing = False

    @property
    def queued(self) -> int:
        """Requests waiting for the next step."""
        return len(self._queue)

    async def submit(self, payload: Payload) -> IngestReport:
        """Queue one request's events; return its report once the step that ran them is done."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[IngestReport] = loop.create_future()
        self._queue.append((payload, future))
        self._wake()
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        in_flight = 0  # requests of the last step plus those queued when it ended
        while True:
            if in_flight > 1:
                await self._gather(in_flight)
            if not self._queue:
                if not self.service.advance_deferred:
                    return
                # no request waits: the steps whose advance was deferred advance now (see LiveService._hand_on)
                with contextlib.suppress(Exception):  # their requests were answered; the service logged a failure
                    await loop.run_in_executor(self._executor, self.service.advance_pending)
                in_flight = 0
                continue
            take, events = 0, 0
            while take < len(self._queue) and (take == 0 or events + self._queue[take][0].count <= self.max_events):
                events += self._queue[take][0].count
                take += 1
            step, self._queue = self._queue[:take], self._queue[take:]
            self.service.metrics.set_queue_depth("http_ingest", len(self._queue))
            answered = False
            wave: asyncio.Future[int] = loop.create_future()  # the requests in flight once the answers are out

            def ready(
                reports: list[IngestReport], durable: Future[None], step: list[_Queued] = step,
                wave: asyncio.Future[int] = wave,
            ) -> None:  # fmt: skip
                """Called in the worker thread once the step's events are counted: answer when durable."""
                nonlocal answered
                answered = True
                loop.call_soon_threadsafe(self._answer_when_durable, step, reports, durable, wave)

            try:
                await loop.run_in_executor(self._executor, self.service.ingest_payloads, [p for p, _ in step], ready)
            except Exception as exc:  # answer every waiting request, whatever went wrong
                if not answered:  # else its events are counted and being made durable: answered as such (the
                    for _, fut in step:  # service logs the failure of the stream's advance)
                        if not fut.done():
                            fut.set_exception(exc)
            # the clients of the next wave: the step's and those queued before its answers went out (requests
            # queued after that come from the step's own clients)
            in_flight = await wave if answered else take + len(self._queue)
            self.service.metrics.set_queue_depth("http_ingest", len(self._queue))

    def _answer_when_durable(
        self, step: list[_Queued], reports: list[IngestReport], durable: Future[None], wave: asyncio.Future[int]
    ) -> None:
        """Answer each request of ``step`` with its report once ``durable`` completes (with its error if it
        fails), then resolve ``wave`` with the requests in flight; on the event loop."""

        def answer(done: asyncio.Future[None]) -> None:
            error = done.exception()
            for (_, fut), report in zip(step, reports, strict=True):
                if fut.done():
                    continue
                if error is not None:
                    fut.set_exception(error)
                else:
                    fut.set_result(report)
            wave.set_result(len(step) + len(self._queue))

        asyncio.wrap_future(durable).add_done_callback(answer)

    async def _gather(self, expected: int) -> None:
        """Wait until ``expected`` requests are queued, while they keep coming; the clocks start once the answers
        of the last step are sent (the first loop pass). Between arrivals the worker sleeps on a future that the
        next :meth:`submit` resolves, with a timeout (``quiet_s``, bounded by the ``linger_s`` deadline)."""
        await asyncio.sleep(0)
        loop = asyncio.get_running_loop()
        now = loop.time()
        deadline = now + self.linger_s
        while len(self._queue) < expected and not self._closing:
            timeout = min(deadline - now, self.quiet_s)
            if timeout <= 0:
                return
            self._arrival = arrival = loop.create_future()
            # resolved True by the next submit, False by the timer (cheaper than asyncio.wait_for per arrival)
            timer = loop.call_later(timeout, _resolve, arrival, False)
            try:
                arrived = await arrival
            finally:
                timer.cancel()
                self._arrival = None
            if not arrived:
                return  # quiet for ``quiet_s``: the others are not coming soon
            now = loop.time()

    def _wake(self) -> None:
        """End the worker's current wait for arrivals, if it is waiting."""
        arrival = self._arrival
        if arrival is not None:
            _resolve(arrival, True)

    async def close(self) -> None:
        """Finish every queued request (graceful shutdown, without lingering for more), then stop the worker
        thread."""
        self._closing = True
        self._wake()
        if self._worker is not None:
            await self._worker
        self._executor.shutdown(wait=True)


def _resolve(future: asyncio.Future[bool], value: bool) -> None:
    """Resolve ``future`` with ``value`` unless it is done already."""
    if not future.done():
        future.set_result(value)
