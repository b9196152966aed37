"""Clocks that drive the notification pipeline: the wall clock, or a manual clock for simulated time.

Everything time-dependent in ``notify`` (group timers, repeat intervals, silences, retry schedules, in-line
retry waits) reads an injected :class:`Clock`, so tests and replays run in simulated time without sleeping.

>>> clock = ManualClock(1_000)
>>> clock.advance(seconds=90)
>>> clock.now_ms()
91000
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol


class Clock(Protocol):
    """Source of the current time in epoch milliseconds, and a way to wait."""

    def now_ms(self) -> int:
        """Current time, epoch milliseconds."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (used between in-line delivery retries)."""
        ...


class SystemClock:
    """The wall clock."""

    def now_ms(self) -> int:
        """Wall-clock time in epoch milliseconds."""
        return time.time_ns() // 1_000_000

    def sleep(self, seconds: float) -> None:
        """Really sleep."""
        time.sleep(max(0.0, seconds))


class ManualClock:
    """A clock that only moves when told to; :meth:`sleep` returns at once and records the wait."""

    def __init__(self, start_ms: int = 0) -> None:
        self._now = int(start_ms)
        self._lock = threading.Lock()
        self.slept_s = 0.0  #: total seconds requested through :meth:`sleep`

    def now_ms(self) -> int:
        """The simulated time."""
        return self._now

    def set(self, now_ms: int) -> None:
        """Jump to ``now_ms`` (never backwards)."""
        self._now = max(self._now, int(now_ms))

    def advance(self, *, seconds: float = 0.0, ms: int = 0) -> None:
        """Move the simulated time forward."""
        self._now += int(seconds * 1000) + int(ms)

    def sleep(self, seconds: float) -> None:
        """Record the requested wait without waiting (simulated time does not move on its own)."""
        with self._lock:
            self.slept_s += max(0.0, seconds)


class FunctionClock:
    """A clock read from a function returning epoch seconds (e.g. the compressed clock of ``tunewatch run``).

    ``speed`` is how many clock seconds pass per wall-clock second; :meth:`sleep` waits accordingly.
    """

    def __init__(self, now_s: Callable[[], float], speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._now_s = now_s
        self.speed = speed

    def now_ms(self) -> int:
        """The function's time in epoch milliseconds."""
        return int(self._now_s() * 1000)

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        time.sleep(max(0.0, seconds) / self.speed)
