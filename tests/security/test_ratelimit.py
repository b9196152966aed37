"""The rate limiter's in-process counters: limits hold per key and address, expired windows are dropped."""

from __future__ import annotations

import threading
import time

from tunewatch.security.ratelimit import RateLimiter


def test_limits_hold_with_the_rarely_purged_memory_storage() -> None:
    limiter = RateLimiter(per_key="3/second", per_address="")
    assert [limiter.hit(key_id="k", address=None) for _ in range(3)] == [None, None, None]
    refused = limiter.hit(key_id="k", address=None)
    assert refused is not None and refused.scope == "key" and refused.retry_after_s >= 1
    assert limiter.hit(key_id="other", address=None) is None  # counted per key


def test_expired_windows_are_purged_without_a_thread() -> None:
    limiter = RateLimiter(per_key="", per_address="5/second")
    threads = threading.active_count()
    for i in range(200):
        assert limiter.hit(key_id=None, address=f"198.51.100.{i}") is None
    assert len(limiter.memory) == 200 and threading.active_count() == threads
    time.sleep(1.1)
    assert limiter.hit(key_id=None, address="203.0.113.1") is None  # the once-a-second purge runs on this call
    assert len(limiter.memory) == 1


def test_a_refused_hit_still_counts_and_test_does_not() -> None:
    limiter = RateLimiter(per_key="", per_address="", auth_failures="2/minute")
    windows, item = limiter.memory, limiter.auth_failures[0]
    assert windows.test(item, "auth_failures", "a") and windows.test(item, "auth_failures", "a")  # nothing counted
    assert [windows.hit(item, "auth_failures", "a") for _ in range(3)] == [True, True, False]
    assert not windows.test(item, "auth_failures", "a")
    reset, remaining = windows.get_window_stats(item, "auth_failures", "a")
    assert remaining == 0 and 59 < reset - time.time() <= 60


def test_expired_counters_are_dropped_when_read() -> None:
    limiter = RateLimiter(per_key="1/second", per_address="")
    assert limiter.hit(key_id="k", address=None) is None
    assert limiter.hit(key_id="k", address=None) is not None
    time.sleep(1.05)
    assert limiter.hit(key_id="k", address=None) is None  # a new window, without waiting for the purge
