"""Retry policy of integration calls (tenacity): 429 and 5xx and network failures are tried again.

A ``Retry-After`` sent by the server is honoured as the wait; otherwise the wait grows exponentially with jitter.
A ``Retry-After`` longer than ``max_retry_after_s`` is not waited for: the error is raised at once, so a caller on
the alert path is never blocked for minutes. ``sleep`` is injectable so tests run on a simulated clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from tunewatch.integrations.errors import IntegrationError

T = TypeVar("T")


class RetryPolicy:
    """How often and how long to retry; ``call(fn)`` runs ``fn`` under the policy.

    ``attempts`` counts the first try. ``sleep`` (default :func:`time.sleep`) receives every wait in seconds.
    """

    def __init__(
        self,
        attempts: int = 4,
        backoff_s: float = 0.5,
        backoff_max_s: float = 8.0,
        max_retry_after_s: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if attempts < 1:
            raise ValueError(f"retry attempts must be >= 1, got {attempts}")
        self.attempts = attempts
        self.max_retry_after_s = max_retry_after_s
        self.sleep = sleep
        self._backoff = wait_exponential_jitter(multiplier=backoff_s, max=backoff_max_s, jitter=backoff_s)

    def _should_retry(self, exc: BaseException) -> bool:
        if not isinstance(exc, IntegrationError) or not exc.retryable:
            return False
        return exc.retry_after is None or exc.retry_after <= self.max_retry_after_s

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, IntegrationError) and exc.retry_after is not None:
            return exc.retry_after
        return float(self._backoff(state))

    def call(self, fn: Callable[[], T]) -> T:
        """``fn()``, retried on retryable :class:`IntegrationError`; the last error is re-raised as is."""
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=self._wait,
            retry=retry_if_exception(self._should_retry),
            sleep=self.sleep,
            reraise=True,
        )
        return retrying(fn)
