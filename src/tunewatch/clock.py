"""The one time source of tunewatch's components: an injected :class:`Clock`, real or simulated.

Everything that waits, expires or asks what time it is reads a clock instead of :mod:`time`: the cache (TTLs,
reconnect back-off, lock waits: :meth:`Clock.monotonic`), the notification pipeline (group timers, repeat
intervals, silences, retry schedules: :meth:`Clock.now_ms`; in-line retry waits: :meth:`Clock.sleep`), validation
(events from the future), the pipeline and the service (live windows, data freshness) and the metrics (the
freshness lag). Tests and replays inject a :class:`ManualClock`, so they run in simulated time without sleeping;
``tunewatch run`` its simulated clock (:class:`tunewatch.simulate.live_clock.SimulatedClock`). Where a component
also takes a plain function of epoch seconds, :func:`as_clock` makes it a :class:`Clock`.

>>> clock = ManualClock(1_000)
>>> clock.advance(seconds=90)
>>> clock.now_ms(), clock.monotonic()
(91000, 91.0)
>>> clock.sleep(2.5)  # returns at once: simulated time moves by the wait
>>> clock.now_ms(), clock.slept_s
(93500, 2.5)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol, cast

_NS_PER_MS = 1_000_000


class Clock(Protocol):
    """Wall-clock time in epoch milliseconds, monotonic seconds, and a way to wait.

    >>> def deadline_passed(clock: Clock, deadline_s: float) -> bool:
    ...     return clock.monotonic() >= deadline_s
    >>> clock = ManualClock()
    >>> deadline_passed(clock, 5.0), clock.sleep(5.0), deadline_passed(clock, 5.0)
    (False, None, True)
    """

    def now_ms(self) -> int:
        """Current time, epoch milliseconds."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; never goes backwards (durations, deadlines)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""
        ...


class SystemClock:
    """The real clocks: :func:`time.time_ns` and :func:`time.monotonic`.

    >>> clock = SystemClock()
    >>> clock.now_ms() > 1_700_000_000_000 and clock.monotonic() <= clock.monotonic()
    True
    """

    def now_ms(self) -> int:
        """Wall-clock time in epoch milliseconds."""
        return time.time_ns() // _NS_PER_MS

    def monotonic(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """Really sleep."""
        time.sleep(max(0.0, seconds))


class ManualClock:
    """Simulated time: it moves only with :meth:`advance`, :meth:`set` and :meth:`sleep`, which returns at once.

    ``start_ms`` is the simulated epoch time in milliseconds; :meth:`monotonic` is the same instant in seconds.
    Time is kept in integer nanoseconds, so millisecond readings are exact.

    >>> clock = ManualClock()
    >>> clock.advance(0.25)
    >>> clock.set(1_000)
    >>> clock.set(10)  # never backwards
    >>> clock.now_ms()
    1000
    """

    def __init__(self, start_ms: int = 0) -> None:
        self._ns = int(start_ms) * _NS_PER_MS
        self._lock = threading.Lock()
        self.slept_s = 0.0  #: total seconds requested through :meth:`sleep`

    def now_ms(self) -> int:
        """The simulated time, epoch milliseconds."""
        return self._ns // _NS_PER_MS

    def monotonic(self) -> float:
        """The simulated time in seconds."""
        return self._ns / 1e9

    def advance(self, seconds: float = 0.0, *, ms: int = 0) -> None:
        """Move the simulated time forward by ``seconds`` plus ``ms`` milliseconds."""
        with self._lock:
            self._ns += max(0, round(seconds * 1e9) + int(ms) * _NS_PER_MS)

    def set(self, now_ms: int) -> None:
        """Jump to ``now_ms`` (never backwards)."""
        with self._lock:
            self._ns = max(self._ns, int(now_ms) * _NS_PER_MS)

    def sleep(self, seconds: float) -> None:
        """Record the wait and move the simulated time by it, without waiting."""
        with self._lock:
            wait = max(0.0, seconds)
            self.slept_s += wait
            self._ns += round(wait * 1e9)


class FunctionClock:
    """A clock read from a function returning epoch seconds (e.g. the compressed clock of ``tunewatch run``).

    ``speed`` is how many clock seconds pass per wall-clock second; :meth:`sleep` waits accordingly.

    >>> clock = FunctionClock(lambda: 1_767_571_200.5, speed=120)
    >>> clock.now_ms(), clock.monotonic()
    (1767571200500, 1767571200.5)
    """

    def __init__(self, now_s: Callable[[], float], speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._now_s = now_s
        self.speed = speed

    def now_ms(self) -> int:
        """The function's time in epoch milliseconds."""
        return int(self._now_s() * 1000)

    def monotonic(self) -> float:
        """The function's time in seconds (the function must not go backwards)."""
        return float(self._now_s())

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        time.sleep(max(0.0, seconds) / self.speed)


def as_clock(clock: Clock | Callable[[], float] | None) -> Clock:
    """``clock`` as a :class:`Clock`: itself when it is one, a :class:`FunctionClock` over a function of epoch
    seconds, the :class:`SystemClock` for ``None``.

    >>> as_clock(lambda: 1_767_571_200.0).now_ms(), isinstance(as_clock(None), SystemClock)
    (1767571200000, True)
    >>> manual = ManualClock(5); as_clock(manual) is manual
    True
    """
    if clock is None:
        return SystemClock()
    if all(hasattr(clock, name) for name in ("now_ms", "monotonic", "sleep")):
        return cast(Clock, clock)
    return FunctionClock(cast(Callable[[], float], clock))
