"""Delivery: send due outbox notifications with retries, backoff, rate limits and timeouts.

Each integration's queue is worked in order by one worker thread, and integrations run in parallel, so a
slow or failing receiver never holds up the others. One delivery *round* makes up to ``delivery.attempts``
tries with exponential backoff and jitter (tenacity, sleeping on the injected clock). When a round fails
with a retryable error, the notification stays pending and the integration's queue pauses until the next
round, scheduled with exponential backoff and jitter from ``backoff_initial`` to ``backoff_max``; a
permanent error (e.g. HTTP 400, SMTP 5xx) or an age beyond ``max_age`` fails the notification for good.
A receiver over its ``rate_limit`` (``limits``, in-memory moving window) is deferred, never dropped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import tenacity
from limits import RateLimitItem
from limits import parse as parse_rate_limit
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from tunewatch.clock import Clock
from tunewatch.notify.config import DeliveryConfig, NotifyConfig
from tunewatch.notify.outbox import Notification
from tunewatch.notify.receivers import DeliveryError, Integration

log = logging.getLogger(__name__)

Outcome = Literal["sent", "skipped", "retry", "deferred", "failed"]


@dataclass(frozen=True, slots=True)
class Result:
    """What happened to one notification in one delivery pass."""

    notification: Notification
    outcome: Outcome
    error: str = ""
    next_attempt_ms: int = 0


def alerts_to_send(n: Notification, send_resolved: bool) -> list[dict[str, Any]]:
    """The notification's alerts an integration sends: resolved ones only with ``send_resolved``."""
    return n.alerts if send_resolved else [a for a in n.alerts if a.get("status") != "resolved"]


class _RetryState(tenacity.RetryCallState):
    def __init__(self, attempt: int) -> None:
        super().__init__(retry_object=tenacity.Retrying(), fn=None, args=(), kwargs={})
        self.attempt_number = attempt


class Deliverer:
    """Delivers notifications to the configured integrations."""

    def __init__(self, config: NotifyConfig, integrations: dict[str, Integration], clock: Clock) -> None:
        self._cfg: DeliveryConfig = config.delivery
        self._integrations = integrations
        self._clock = clock
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._limits: dict[str, RateLimitItem] = {
            r.name: parse_rate_limit(r.rate_limit) for r in config.receivers if r.rate_limit
        }
        self._round_wait = tenacity.wait_exponential_jitter(
            multiplier=self._cfg.backoff_initial / 1000, max=self._cfg.backoff_max / 1000,
            jitter=self._cfg.backoff_initial / 1000,
        )  # fmt: skip
        self._pool = ThreadPoolExecutor(max_workers=self._cfg.workers, thread_name_prefix="tunewatch-notify")

    def deliver(self, pending: list[Notification], now_ms: int, on_result: Callable[[Result], None]) -> None:
        """Work every integration queue in ``pending`` (in queue order) and report each result as it happens.

        ``on_result`` is called from worker threads; it must be thread-safe (the pipeline serialises its
        database writes with a lock). Returns when every queue is done for this pass.
        """
        queues: dict[str, list[Notification]] = {}
        for n in pending:
            queues.setdefault(n.integration_key, []).append(n)
        futures = [self._pool.submit(self._work_queue, q, now_ms, on_result) for q in queues.values()]
        for f in futures:
            f.result()

    def _work_queue(self, queue: list[Notification], now_ms: int, on_result: Callable[[Result], None]) -> None:
        for n in queue:
            try:
                result = self._deliver_one(n, now_ms)
            except Exception as exc:  # a bug in an integration must not kill the queue silently
                log.exception("unexpected error delivering to %s", n.integration_key)
                result = self._retry(n, now_ms, f"internal error: {type(exc).__name__}")
            on_result(result)
            if result.outcome in ("retry", "deferred"):
                return  # keep order: later notifications wait for this one

    def _deliver_one(self, n: Notification, now_ms: int) -> Result:
        if n.next_attempt_ms > now_ms:
            return Result(n, "deferred", n.last_error, n.next_attempt_ms)
        integration = self._integrations.get(n.integration_key)
        if integration is None:
            return Result(n, "failed", f"receiver integration {n.integration_key} is no longer configured")
        if now_ms - n.created_ms > self._cfg.max_age:
            return Result(n, "failed", f"given up after {n.attempts} attempts: older than max_age ({n.last_error})")
        alerts = alerts_to_send(n, integration.send_resolved)
        if not alerts:
            return Result(n, "skipped")
        limit = self._limits.get(n.receiver)
        if limit is not None and not self._limiter.hit(limit, n.receiver):
            reset_s = self._limiter.get_window_stats(limit, n.receiver).reset_time
            wait_ms = max(100, int((reset_s - self._wall_s()) * 1000))
            return Result(n, "deferred", "rate limited", now_ms + wait_ms)
        try:
            for attempt in tenacity.Retrying(
                stop=tenacity.stop_after_attempt(self._cfg.attempts),
                wait=tenacity.wait_exponential_jitter(
                    multiplier=self._cfg.retry_initial / 1000, max=self._cfg.retry_max / 1000,
                    jitter=self._cfg.retry_initial / 1000,
                ),
                retry=tenacity.retry_if_exception(lambda e: isinstance(e, DeliveryError) and e.retryable),
                sleep=self._clock.sleep,
                reraise=True,
            ):  # fmt: skip
                with attempt:
                    n.attempts += 1
                    integration.send(n, alerts)
        except DeliveryError as exc:
            log.warning("notification %s to %s: %s", n.id[:8], n.integration_key, exc)
            if not exc.retryable:
                return Result(n, "failed", str(exc))
            return self._retry(n, now_ms, str(exc))
        return Result(n, "sent")

    def _retry(self, n: Notification, now_ms: int, error: str) -> Result:
        n.rounds += 1
        wait_s = self._round_wait(_RetryState(n.rounds))
        return Result(n, "retry", error, now_ms + int(wait_s * 1000))

    @staticmethod
    def _wall_s() -> float:
        return time.time()  # the limits library keeps its windows in wall-clock time

    def close(self) -> None:
        """Stop the worker threads and close integrations."""
        self._pool.shutdown(wait=True)
        for integration in self._integrations.values():
            integration.close()
