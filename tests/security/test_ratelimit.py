"""The rate limiter's in-memory storage: limits hold, and its background purge does not run on every hit."""

from __future__ import annotations

import time

from tunewatch.security.ratelimit import RateLimiter


def test_limits_hold_with_the_rarely_purged_memory_storage() -> None:
    limiter = RateLimiter(per_key="3/second", per_address="")
    assert [limiter.hit(key_id="k", address=None) for _ in range(3)] == [None, None, None]
    refused = limiter.hit(key_id="k", address=None)
    assert refused is not None and refused.scope == "key" and refused.retry_after_s >= 1
    assert limiter.hit(key_id="other", address=None) is None  # counted per key


def test_background_purge_starts_at_most_once_a_second() -> None:
    limiter = RateLimiter(per_key="100000/second", per_address="100000/second")
    timers = set()
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:  # the parent storage would start a 10 ms timer thread about 30 times
        limiter.hit(key_id="k", address="127.0.0.1")
        timers.add(id(limiter.storage.timer))  # type: ignore[attr-defined]
        time.sleep(0.002)
    assert len(timers) <= 2


def test_expired_counters_are_dropped_when_read() -> None:
    limiter = RateLimiter(per_key="1/second", per_address="")
    assert limiter.hit(key_id="k", address=None) is None
    assert limiter.hit(key_id="k", address=None) is not None
    time.sleep(1.05)
    assert limiter.hit(key_id="k", address=None) is None  # a new window, without waiting for the purge
