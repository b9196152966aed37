"""The one clock abstraction: the simulated clock's contract that the cache and the notifier both rely on."""

from __future__ import annotations

from tunewatch.clock import Clock, FunctionClock, ManualClock, SystemClock

T0 = 1_767_571_200_123


def test_every_clock_satisfies_the_one_protocol() -> None:
    clocks: list[Clock] = [SystemClock(), ManualClock(T0), FunctionClock(lambda: T0 / 1000)]
    for clock in clocks:
        assert clock.now_ms() > 0 and clock.monotonic() > 0


def test_manual_time_is_exact_in_milliseconds_at_epoch_scale() -> None:
    clock = ManualClock(T0)
    for _ in range(1000):
        clock.advance(0.001)  # a float second fraction each time: no drift or rounding down
    assert clock.now_ms() == T0 + 1000
    clock.advance(ms=7)
    assert clock.now_ms() == T0 + 1007


def test_sleep_moves_simulated_time_so_deadline_loops_end() -> None:
    clock = ManualClock()
    deadline = clock.monotonic() + 1.0
    waits = 0
    while clock.monotonic() < deadline:  # the cache's lock wait loop: must end without real time passing
        clock.sleep(0.3)
        waits += 1
    assert waits == 4 and abs(clock.slept_s - 1.2) < 1e-9


def test_set_never_goes_backwards() -> None:
    clock = ManualClock(T0)
    before = clock.monotonic()
    clock.set(T0 - 60_000)
    assert clock.now_ms() == T0 and clock.monotonic() == before
