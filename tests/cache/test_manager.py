"""The manager in its default (memory-only) mode: API, TTL, negative caching, stampede, pipeline store, stats."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from tunewatch.cache import CacheConfig, CodecError, MusicStreamingCacheManager
from tunewatch.clock import ManualClock
from tunewatch.monitor import PrometheusMetricsManager
from tunewatch.process import MusicDataProcessor
from tunewatch.validate import EnterpriseDataValidator


def _result() -> Any:
    ev = [
        {"event_id": f"e{i}", "ts": 1_699_999_980_000 + i, "event_type": "play", "user_id": f"u{i % 3}",
         "market": "BR", "platform": "android", "tier": "premium", "track_id": "t1", "artist_id": "a1",
         "ms_played": 45_000, "track_duration_ms": 180_000, "reason_end": "trackdone"}
        for i in range(10)
    ]  # fmt: skip
    return MusicDataProcessor().process(EnterpriseDataValidator().validate(ev))


def test_default_is_memory_only_and_store_round_trips_a_processing_result() -> None:
    cache = MusicStreamingCacheManager()
    assert cache.remote is None and cache.config.backend == "memory"
    result = _result()
    items = result.cache_items()
    assert cache.store(result) == len(items) > 0
    key = "metrics:global:1699999980000"
    assert cache.get(key) == items[key]
    assert cache.get_many(items) == items
    assert sorted(cache.memory.keys_with_tag("metrics")) == sorted(cache.full_key(k) for k in items)
    assert cache.invalidate_tag("metrics") == len(items) and cache.get(key) is None


def test_get_set_delete_and_many_variants() -> None:
    cache = MusicStreamingCacheManager()
    cache.set("track:t1", {"title": "Song", "vec": np.arange(3)})
    got = cache.get("track:t1")
    assert got["title"] == "Song" and got["vec"].tolist() == [0, 1, 2]
    assert cache.get("missing", default="d") == "d"
    assert cache.set_many({"a": 1, "b": [2]}) == 2
    assert cache.get_many(["a", "b", "c", "a"]) == {"a": 1, "b": [2]}
    assert cache.delete("a", "c") == 1 and cache.get("a") is None
    assert cache.set_many({}) == 0
    stats = cache.stats()
    assert (stats["hits"], stats["misses"]) == (3, 3)  # get_many counts each distinct key


def test_keys_are_namespaced_and_versioned() -> None:
    cache = MusicStreamingCacheManager(namespace="svc", version=7)
    cache.set("k", 1)
    assert cache.memory.get("svc:v7:k") is not None
    assert cache.full_key("a:b") == "svc:v7:a:b"


def test_ttl_default_and_per_call_on_a_manual_clock() -> None:
    clock = ManualClock()
    cache = MusicStreamingCacheManager(ttl_default=100, clock=clock)
    cache.set("default", 1)
    cache.set("short", 2, ttl=10)
    clock.advance(10)
    assert cache.get("short") is None and cache.get("default") == 1
    clock.advance(90)
    assert cache.get("default") is None
    assert cache.stats()["expired"] == 2


def test_invalid_ttl_and_unserialisable_values_name_the_key() -> None:
    cache = MusicStreamingCacheManager()
    with pytest.raises(ValueError, match=r"'k'.*> 0"):
        cache.set("k", 1, ttl=0)
    with pytest.raises(CodecError, match="'bad'"):
        cache.set("bad", {1, 2})


def test_negative_caching_computes_a_missing_value_once_per_negative_ttl() -> None:
    clock = ManualClock()
    cache = MusicStreamingCacheManager(clock=clock, negative_ttl=30)
    calls: list[int] = []

    def lookup() -> dict[str, str] | None:
        calls.append(1)
        return None

    assert cache.get_or_compute("artist:gone", lookup) is None
    assert cache.get_or_compute("artist:gone", lookup) is None
    assert cache.get("artist:gone", default="absent") == "absent"
    assert len(calls) == 1 and cache.stats()["negative_hits"] == 2
    clock.advance(30)
    assert cache.get_or_compute("artist:gone", lookup, negative_ttl=5) is None
    assert len(calls) == 2


def test_compute_exception_propagates_and_nothing_is_cached() -> None:
    cache = MusicStreamingCacheManager()

    def boom() -> int:
        raise RuntimeError("upstream down")

    with pytest.raises(RuntimeError, match="upstream down"):
        cache.get_or_compute("k", boom)
    assert cache.get_or_compute("k", lambda: 5) == 5
    assert not cache._key_locks  # per-key locks are released and dropped


def test_stampede_of_threads_runs_exactly_one_computation() -> None:
    cache = MusicStreamingCacheManager()
    n = 16
    all_waiting = threading.Event()
    calls: list[int] = []
    results: list[Any] = [None] * n

    def compute() -> dict[str, int]:
        calls.append(1)
        assert all_waiting.wait(10)  # hold the computation until every thread queues on the key
        return {"v": 42}

    def worker(i: int) -> None:
        results[i] = cache.get_or_compute("query:top-tracks", compute)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    full = cache.full_key("query:top-tracks")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        entry = cache._key_locks.get(full)
        if entry is not None and entry[1] == n:
            break
        time.sleep(0.001)
    all_waiting.set()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert results == [{"v": 42}] * n
    assert cache.stats()["computes"] == 1


def test_memory_bounds_come_from_the_config() -> None:
    cache = MusicStreamingCacheManager(memory_max_entries=10)
    cache.set_many({f"k{i}": i for i in range(25)})
    stats = cache.stats()
    assert stats["entries"] == 10 and stats["evictions"] == 15 and stats["bytes"] > 0


def test_config_from_environment_and_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNEWATCH_CACHE_TTL_DEFAULT", "120")
    monkeypatch.setenv("TUNEWATCH_CACHE_CLUSTER_NODES", '["127.0.0.1:7000"]')
    monkeypatch.setenv("TUNEWATCH_CACHE_NAMESPACE", "envns")
    cfg = CacheConfig()
    assert (cfg.ttl_default, cfg.cluster_nodes, cfg.namespace, cfg.backend) == (
        120,
        ["127.0.0.1:7000"],
        "envns",
        "memory",
    )
    cache = MusicStreamingCacheManager(compression=False)
    assert cache.config.ttl_default == 120 and cache.config.compression is False
    with pytest.raises(ValidationError, match="not_a_field"):
        MusicStreamingCacheManager(not_a_field=1)
    with pytest.raises(ValidationError, match="redis_cluster"):
        CacheConfig(redis_cluster=True, cluster_nodes=[])
    with pytest.raises(ValidationError, match="host:port"):
        CacheConfig(cluster_nodes=["nohost"])


def test_stats_export_through_prometheus() -> None:
    cache = MusicStreamingCacheManager()
    cache.get_or_compute("k", lambda: 1)
    cache.get("k")
    stats = cache.stats()
    for name in ("hits", "misses", "hit_ratio", "evictions", "bytes", "errors", "latency"):
        assert isinstance(stats[name], float), name
    assert stats["hit_ratio"] == 0.5 and stats["latency"] > 0
    metrics = PrometheusMetricsManager()
    metrics.record_cache(stats)
    text = metrics.exposition().decode()
    assert "tunewatch_cache_hit_ratio 0.5" in text
