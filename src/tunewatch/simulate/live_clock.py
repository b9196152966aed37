"""The simulated clock of ``tunewatch run``, the feeder that paces the simulated stream by it, and its labels.

Simulated time is the stream's time. It runs ``speed`` simulated minutes per wall-clock second while the
simulator keeps up, and never more than one minute (:data:`LEAD_S`) ahead of the data delivered so far: when the
host stalls (CPU starvation, a paused process, a slow batch), simulated time waits for the data instead of
jumping ahead, and the schedule resumes from there. So data-freshness rules (``freshness_lag_s``, ``DataStale``)
measure lag in the simulated clock's terms — how far the simulated data is behind simulated now — and a
2.5-second stall of the host is 2.5 seconds late, not 300 simulated seconds of stale data.

What runs on the simulated clock: event and alert times, ``for`` / ``keep_firing_for``, absence rules, silences
created through the API or console, the freshness lag and the ``future`` check of validation. Notifications
keep the wall clock (group_wait, group_interval, repeat_interval, retries; their schedule survives a restart).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Final

#: how far simulated time may run ahead of the data delivered (one block of the feeder)
LEAD_S: Final = 60.0
#: annotation every alert of ``tunewatch run`` carries (shown in notifications and the console)
ANNOTATION: Final = "simulated_clock"


class SimulatedClock:
    """Simulated epoch seconds, paced by the wall clock at ``speed`` simulated minutes per second and held back
    to at most ``lead_s`` past :meth:`delivered` data (see the module docstring). Thread-safe; monotonic.

    >>> wall = [100.0]
    >>> clock = SimulatedClock(1_000.0, speed=2.0, wall=lambda: wall[0])
    >>> clock.delivered(1_000.0)
    >>> wall[0] += 0.25; clock()  # 0.25 s x 120 = 30 simulated seconds
    1030.0
    >>> wall[0] += 2.5; clock()  # a stall: the data stopped at 1,000, so time waits at 1,000 + 60
    1060.0
    """

    def __init__(
        self, start_s: float, *, speed: float, wall: Callable[[], float] = time.time, lead_s: float = LEAD_S
    ) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self.speed = speed
        self.lead_s = lead_s
        self._wall = wall
        self._lock = threading.Lock()
        self._anchor_wall = wall()
        self._anchor_sim = start_s
        self._delivered = start_s
        self.paused_s = 0.0  # wall-clock seconds simulated time waited for the data (stalls)

    @property
    def factor(self) -> float:
        """Simulated seconds per wall-clock second."""
        return 60.0 * self.speed

    def _now(self, wall: float) -> float:
        paced = self._anchor_sim + (wall - self._anchor_wall) * self.factor
        return min(paced, self._delivered + self.lead_s)

    def __call__(self) -> float:
        """Simulated now (epoch seconds)."""
        with self._lock:
            return self._now(self._wall())

    def now_ms(self) -> int:
        """Simulated now, epoch milliseconds (:class:`tunewatch.clock.Clock`)."""
        return int(self() * 1000)

    def monotonic(self) -> float:
        """Simulated now in seconds: it never goes backwards."""
        return self()

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of simulated time (``seconds / factor`` on the wall clock)."""
        time.sleep(max(0.0, seconds) / self.factor)

    def delivered(self, until_s: float) -> None:
        """Data up to simulated ``until_s`` has been handed to the service."""
        with self._lock:
            self._delivered = max(self._delivered, until_s)

    def wall_at(self, sim_s: float) -> float:
        """The wall-clock time at which simulated ``sim_s`` is reached on the current schedule."""
        with self._lock:
            return self._anchor_wall + (sim_s - self._anchor_sim) / self.factor

    def resume(self) -> None:
        """Continue from simulated now on a new schedule (after the feeder fell behind: a stall)."""
        with self._lock:
            wall = self._wall()
            now = self._now(wall)
            self.paused_s += max(0.0, (self._anchor_sim + (wall - self._anchor_wall) * self.factor - now) / self.factor)
            self._anchor_sim, self._anchor_wall = now, wall


def feed(
    clock: SimulatedClock,
    blocks: Iterable[Any],
    ingest: Callable[[Any], object],
    stop: threading.Event,
    *,
    first_end_s: float,
    block_s: float = 60.0,
) -> None:
    """Hand ``blocks`` (block ``i`` covers simulated ``[first_end_s - block_s + i*block_s, first_end_s + i*block_s)``)
    to ``ingest`` when the clock reaches each block's end; when late, simulated time resumes from where the data is
    instead of catching up in a burst."""
    for i, block in enumerate(blocks):
        end = first_end_s + i * block_s
        delay = clock.wall_at(end) - time.time()
        if delay > 0:
            if stop.wait(delay):
                return
        else:
            if stop.is_set():
                return
            if delay < -0.05 * block_s / clock.factor:  # behind schedule by more than 5 % of a block: a stall
                clock.resume()
        clock.delivered(end)
        ingest(block)


def sim_label(epoch_s: float) -> str:
    """``sim 2026-01-05 10:03`` for a simulated instant."""
    return "sim " + datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%d %H:%M")


def clock_note(clock: SimulatedClock) -> str:
    """The annotation text of an alert raised now: simulated time, speed, and the wall-clock time it happened."""
    sim = clock()
    wall = datetime.fromtimestamp(time.time(), UTC).strftime("%H:%M:%S")
    return (
        f"times are simulated (tunewatch run, {clock.factor:g}x the wall clock): "
        f"raised at {sim_label(sim)} UTC simulated, {wall} UTC wall clock"
    )


def clock_status(clock: object) -> dict[str, object]:
    """``/healthz`` fields saying which clock the service runs on (for the console's "simulated" label)."""
    if isinstance(clock, SimulatedClock):
        return {"clock": "simulated", "clock_factor": clock.factor, "clock_now_ms": int(clock() * 1000)}
    return {"clock": "wall"}
