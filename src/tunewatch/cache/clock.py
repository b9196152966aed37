"""Time source of the cache: TTLs, reconnect back-off and lock waits read an injected :class:`Clock`.

>>> clock = ManualClock()
>>> clock.sleep(2.5)
>>> clock.monotonic()
2.5
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """Monotonic seconds and a way to wait."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; never goes backwards."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""
        ...


class SystemClock:
    """The real monotonic clock."""

    def monotonic(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """Really sleep."""
        time.sleep(max(0.0, seconds))


class ManualClock:
    """Simulated time for tests: it only moves with :meth:`advance` or :meth:`sleep`."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        """Current simulated time."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        with self._lock:
            self._now += seconds

    def sleep(self, seconds: float) -> None:
        """Advance instead of waiting."""
        self.advance(max(0.0, seconds))
