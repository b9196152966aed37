"""The rate limiter's in-process counters: limits hold per key and address, expired windows are dropped."""

from __future__ import annotations

import asyncio
import threading
import time

from hypothesis import given, settings
from hypothesis import strategies as st

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


@settings(max_examples=60, deadline=None)
@given(
    limits=st.sampled_from(["3/minute", "2/minute;4/hour", "5/hour;1/minute"]),  # no window ends mid-test
    calls=st.lists(st.tuples(st.sampled_from(["hit", "test"]), st.sampled_from(["a", "b"])), max_size=12),
)
def test_the_in_process_path_decides_as_the_per_item_windows(limits: str, calls: list[tuple[str, str]]) -> None:
    """``MemoryWindows.decide`` (the limiter's path without shared storage) takes the same decisions, counts the
    same hits and reports the same window as the item-by-item ``hit`` / ``test`` / ``get_window_stats``."""
    fast, reference = RateLimiter(per_key=limits), RateLimiter(per_key=limits)
    for kind, ident in calls:
        count = kind == "hit"
        decided = fast.memory.decide(fast._key_rules, "key", ident, count)
        expected = None
        for item in reference.per_key:
            ok = reference.memory.hit(item, "key", ident) if count else reference.memory.test(item, "key", ident)
            if not ok:
                expected = (str(item), reference.memory.get_window_stats(item, "key", ident)[0])
                break
        got = None if decided is None else (decided[0].text, decided[1])
        assert (got is None) == (expected is None)
        if got is not None and expected is not None:
            assert got[0] == expected[0] and abs(got[1] - expected[1]) < 0.5
    for item in reference.per_key:  # the same hits counted, window by window
        for ident in ("a", "b"):
            assert (
                fast.memory.get_window_stats(item, "key", ident)[1]
                == reference.memory.get_window_stats(item, "key", ident)[1]
            )


def test_failed_authentications_block_an_address_in_process() -> None:
    limiter = RateLimiter(auth_failures="2/minute")
    assert asyncio.run(limiter.auth_blocked("a")) is None
    for _ in range(2):
        asyncio.run(limiter.auth_failed("a"))
    blocked = asyncio.run(limiter.auth_blocked("a"))
    assert blocked is not None and blocked.scope == "auth_failures" and 1 <= blocked.retry_after_s <= 60
    assert blocked.limit == "2 per 1 minute" and asyncio.run(limiter.auth_blocked("b")) is None
