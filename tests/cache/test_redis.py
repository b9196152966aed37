"""The manager against a real redis-server: storage, TTL, tags, corrupt values, cross-process stampede,
two-tier invalidation, and degradation/reconnection when the server dies or hangs."""

from __future__ import annotations

import logging
import multiprocessing
import signal
import time

import pytest

from tests.cache.servers import RedisProcess, wait_until
from tests.cache.workers import compute_once
from tunewatch.cache import MusicStreamingCacheManager
from tunewatch.clock import ManualClock

pytestmark = pytest.mark.integration


def test_values_live_in_redis_under_namespaced_versioned_keys(redis_server: RedisProcess) -> None:
    cache = MusicStreamingCacheManager(redis_url=redis_server.url)
    cache.set("track:t1", {"title": "Song"}, ttl=50)
    raw = redis_server.client()
    assert raw.exists("tw:v1:track:t1") == 1
    assert 0 < raw.pttl("tw:v1:track:t1") <= 50_000
    other = MusicStreamingCacheManager(redis_url=redis_server.url)  # another process would see the same
    assert other.get("track:t1") == {"title": "Song"}
    assert other.stats()["remote_hits"] == 1
    assert MusicStreamingCacheManager(redis_url=redis_server.url, version=2).get("track:t1") is None
    assert cache.set_many({"a": 1, "b": 2}, ttl=5) == 2
    assert other.get_many(["a", "b", "c"]) == {"a": 1, "b": 2}
    assert other.delete("a", "b", "c") == 2 and cache.get("a") is None
    assert len(cache.memory) == 0  # single-tier: memory is only the fallback


def test_tag_invalidation_through_redis_sets(redis_server: RedisProcess) -> None:
    cache = MusicStreamingCacheManager(redis_url=redis_server.url)
    cache.set_many({"m:1": 1, "m:2": 2}, ttl=100, tags=["window:1"])
    cache.set("m:3", 3, ttl=300, tags=["window:1", "other"])
    raw = redis_server.client()
    assert raw.scard("tw:v1!tag:window:1") == 3
    assert 100_000 < raw.pttl("tw:v1!tag:window:1") <= 300_000  # as long as the longest-lived member
    assert cache.invalidate_tag("window:1") == 3
    assert cache.get_many(["m:1", "m:2", "m:3"]) == {}
    assert raw.exists("tw:v1!tag:window:1") == 0


def test_corrupt_or_foreign_value_in_redis_is_a_logged_miss(
    redis_server: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    cache = MusicStreamingCacheManager(redis_url=redis_server.url)
    redis_server.client().set("tw:v1:foreign", b"written by another program")
    with caplog.at_level(logging.ERROR):
        assert cache.get("foreign") is None
        assert cache.get_or_compute("foreign", lambda: "fresh") == "fresh"
    assert cache.get("foreign") == "fresh"
    stats = cache.stats()
    assert stats["decode_errors"] >= 1 and stats["errors"] >= 1 and stats["redis_errors"] == 0
    assert any("tw:v1:foreign" in r.getMessage() for r in caplog.records)


def test_store_processing_result_in_redis(redis_server: RedisProcess) -> None:
    from tests.cache.test_manager import _result

    result = _result()
    cache = MusicStreamingCacheManager(redis_url=redis_server.url)
    n = cache.store(result)
    assert n == len(result.cache_items())
    assert MusicStreamingCacheManager(redis_url=redis_server.url).get_many(result.cache_items()) == result.cache_items()


def test_cross_process_stampede_runs_one_computation(redis_server: RedisProcess) -> None:
    ctx = multiprocessing.get_context("spawn")
    start_at = time.time() + 3.0  # after every child has imported tunewatch
    with ctx.Pool(4) as pool:
        results = pool.starmap(compute_once, [(redis_server.url, start_at)] * 4)
    assert results == [{"answer": 42}] * 4
    assert int(redis_server.client().get("test:computations") or 0) == 1


def test_redis_down_degrades_to_memory_then_reconnects(redis_server: RedisProcess) -> None:
    clock = ManualClock()
    cache = MusicStreamingCacheManager(redis_url=redis_server.url, reconnect_backoff_s=5, clock=clock)
    cache.set("before", 1)
    redis_server.stop()

    assert cache.get("before") is None  # not an exception
    assert cache.stats()["redis_up"] == 0 and cache.stats()["redis_errors"] == 1
    cache.set("during", 2)  # served by memory while Redis is away; no new attempt inside the back-off
    assert cache.get_or_compute("computed", lambda: 3) == 3
    assert cache.get("during") == 2 and cache.stats()["redis_errors"] == 1

    clock.advance(5)  # back-off over: the next call tries Redis again, fails, back-off doubles
    assert cache.get("during") == 2
    assert cache.stats()["redis_errors"] == 2

    redis_server.start()  # same port, empty (no persistence)
    clock.advance(10)
    cache.set("after", 4)
    stats = cache.stats()
    assert stats["redis_up"] == 1 and stats["reconnects"] == 1
    assert redis_server.client().exists("tw:v1:after") == 1
    assert cache.get("during") is None  # the outage copy was dropped: Redis is the truth again


def test_hung_redis_costs_a_bounded_timeout(redis_server: RedisProcess) -> None:
    cache = MusicStreamingCacheManager(redis_url=redis_server.url, timeout_s=0.2, reconnect_backoff_s=60)
    cache.set("k", 1)
    redis_server.send(signal.SIGSTOP)
    try:
        started = time.monotonic()
        assert cache.get("k") is None
        first = time.monotonic() - started
        started = time.monotonic()
        assert cache.get_or_compute("k", lambda: 2) == 2  # inside the back-off: memory only, no waiting
        second = time.monotonic() - started
    finally:
        redis_server.send(signal.SIGCONT)
    assert first < 2.0, f"a hung server blocked a read for {first:.2f}s"
    assert second < 0.2
    assert cache.stats()["redis_errors"] == 1


def test_two_tier_memory_is_invalidated_by_other_processes(redis_server: RedisProcess) -> None:
    a = MusicStreamingCacheManager(redis_url=redis_server.url, two_tier=True)
    b = MusicStreamingCacheManager(redis_url=redis_server.url, two_tier=True)
    try:
        assert a._listener is not None and b._listener is not None
        assert a._listener.connected.wait(5) and b._listener.connected.wait(5)
        a.set("artist:a1", {"name": "old"}, tags=["artists"])
        assert b.get("artist:a1") == {"name": "old"}  # from Redis, now also in b's memory tier
        assert b.get("artist:a1") == {"name": "old"}
        assert b.stats()["memory_hits"] == 1
        a.set("artist:a1", {"name": "new"})
        wait_until(lambda: b.get("artist:a1") == {"name": "new"}, 5, "b to see a's write")
        a.delete("artist:a1")
        wait_until(lambda: b.get("artist:a1") is None, 5, "b to see a's delete")
        a.set("artist:a2", 2, tags=["artists"])
        assert b.get("artist:a2") == 2
        a.invalidate_tag("artists")
        wait_until(lambda: b.memory.get(b.full_key("artist:a2")) is None, 5, "b to drop the tag")
    finally:
        a.close()
        b.close()
