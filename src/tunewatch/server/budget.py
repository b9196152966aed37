"""Rejected events per client address per minute: a client past its budget is refused (429) before any work.

Each rejected event is quarantined (kept with its reasons), so a client sending garbage would grow the database
without bound; past ``per_minute`` rejected events in the current minute its ingest requests are answered 429
with a reason until the minute ends. Counting happens after a request ran (its report says how many of its
events were rejected), checking before the next one is read.

>>> from tunewatch.clock import ManualClock
>>> clock = ManualClock()
>>> budget = RejectionBudget(3, clock=clock)
>>> budget.spend("a", 3); budget.retry_after("a"), budget.retry_after("b")
(60, None)
>>> clock.advance(61); budget.retry_after("a") is None
True
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

from tunewatch.clock import Clock, as_clock

#: addresses remembered within one minute; past it the table starts afresh (bounded memory)
MAX_ADDRESSES = 100_000


class RejectionBudget:
    """Fixed one-minute windows of rejected events per address (thread-safe)."""

    def __init__(self, per_minute: int, *, clock: Clock | Callable[[], float] | None = None) -> None:
        self.per_minute = per_minute
        self._clock: Clock = as_clock(clock)  # its monotonic time marks the minutes
        self._lock = threading.Lock()
        self._minute = -1
        self._spent: dict[str, int] = {}

    def _roll(self) -> float:
        now = self._clock.monotonic()
        minute = int(now // 60)
        if minute != self._minute:
            self._minute, self._spent = minute, {}
        return now

    def retry_after(self, address: str | None) -> int | None:
        """Seconds until ``address`` may send again, or None when it is within its budget."""
        if not self._spent:  # nothing rejected this minute (or an earlier one): within budget, without the lock
            return None
        key = address or ""
        with self._lock:
            now = self._roll()
            if self._spent.get(key, 0) < self.per_minute:
                return None
        return max(1, math.ceil(60 - now % 60))

    def spend(self, address: str | None, rejected: int) -> None:
        """Count ``rejected`` events of a request from ``address``."""
        if rejected <= 0:
            return
        key = address or ""
        with self._lock:
            self._roll()
            if len(self._spent) >= MAX_ADDRESSES and key not in self._spent:
                self._spent = {}
            self._spent[key] = self._spent.get(key, 0) + rejected
