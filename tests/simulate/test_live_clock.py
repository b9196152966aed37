"""The simulated clock of ``tunewatch run``: paced by the wall clock, held back to the data when the host stalls."""

from __future__ import annotations

import threading
import time

import pytest

from tunewatch.simulate.live_clock import LEAD_S, SimulatedClock, clock_status, feed


def test_simulated_time_waits_for_the_data_and_resumes_without_a_jump() -> None:
    wall = [1000.0]
    clock = SimulatedClock(0.0, speed=2.0, wall=lambda: wall[0])  # 120 simulated s per wall s
    clock.delivered(60.0)
    wall[0] += 0.5
    assert clock() == 60.0
    wall[0] += 10.0  # the host stalls for 10 s: 1,200 simulated seconds would pass on a plain scaled clock
    assert clock() == 60.0 + LEAD_S
    clock.resume()
    assert clock() == 60.0 + LEAD_S  # continuous
    wall[0] += 0.25
    assert clock() == pytest.approx(60.0 + LEAD_S)  # still capped until more data arrives
    clock.delivered(180.0)
    assert clock() == pytest.approx(120.0 + 30.0)
    assert clock.paused_s == pytest.approx(10.5 - 1.0)  # the wall time past the cap (reached after 1 s)


def test_the_feeder_never_lets_the_clock_run_more_than_a_block_ahead_of_the_data() -> None:
    clock = SimulatedClock(60.0, speed=10.0)  # 10 simulated minutes per second: 0.1 s per block
    lags: list[float] = []
    ends = iter(range(60, 60 * 13, 60))

    def ingest(block: int) -> None:
        end = next(ends)
        if block == 4:
            time.sleep(0.6)  # a stall of six blocks' worth of wall time inside one batch
        lags.append(clock() - end)

    started = time.time()
    feed(clock, range(12), ingest, threading.Event(), first_end_s=60.0)
    elapsed = time.time() - started
    assert len(lags) == 12
    assert max(lags) <= LEAD_S + 1e-6, lags  # a plain scaled clock would read 360 s of lag after the stall
    # the schedule resumed after the stall (the late block at once, then one per 0.1 s) instead of catching up
    # in a burst (which would finish at about 1.0 s)
    assert elapsed >= 10 * 0.1 + 0.6 - 0.05
    assert clock.paused_s > 0.3


def test_healthz_fields_say_which_clock_runs() -> None:
    clock = SimulatedClock(1_767_607_380.0, speed=2.0, wall=lambda: 0.0)
    assert clock_status(clock) == {"clock": "simulated", "clock_factor": 120.0, "clock_now_ms": 1_767_607_380_000}
    assert clock_status(time.time) == {"clock": "wall"}
