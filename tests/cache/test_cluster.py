"""The manager against a real Redis Cluster of 6 local processes (3 masters + 3 replicas), including failover."""

from __future__ import annotations

import signal
import time

import pytest

from tests.cache.servers import RedisClusterProcesses
from tunewatch.cache import MusicStreamingCacheManager

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _cache(cluster: RedisClusterProcesses, **overrides: object) -> MusicStreamingCacheManager:
    return MusicStreamingCacheManager(
        redis_cluster=True, cluster_nodes=cluster.addresses, reconnect_backoff_s=0.1, reconnect_backoff_max_s=0.5,
        timeout_s=0.5, **overrides,
    )  # fmt: skip


def test_cluster_storage_batches_tags_and_failover(redis_cluster: RedisClusterProcesses) -> None:
    cache = _cache(redis_cluster)
    items = {f"track:{i}": {"i": i, "title": f"Song {i}"} for i in range(200)}
    assert cache.set_many(items, ttl=600, tags=["tracks"]) == 200  # keys spread over every slot range
    assert cache.get_many(items) == items
    per_master = [m.client().dbsize() for m in redis_cluster.masters()]
    assert all(n > 20 for n in per_master), per_master
    assert cache.get_or_compute("query:q1", lambda: [1, 2, 3]) == [1, 2, 3]
    assert cache.invalidate_tag("tracks") == 200 and cache.get_many(items) == {}

    # failover: write, make sure replicas have it, SIGKILL one master
    cache.set_many(items, ttl=600)
    for master in redis_cluster.masters():
        assert master.client().execute_command("WAIT", 1, 5000) == 1
    victim = redis_cluster.masters()[0]
    victim_slots_keys = victim.client().dbsize()
    assert victim_slots_keys > 0
    victim.stop(signal.SIGKILL)

    deadline = time.monotonic() + 30
    got: dict[str, object] = {}
    while time.monotonic() < deadline:
        got = cache.get_many(items)  # never raises; misses while the replica is not yet promoted
        if got == items:
            break
        time.sleep(0.1)
    assert got == items, f"{len(got)}/{len(items)} keys readable 30 s after the master was killed"
    assert len(redis_cluster.masters()) == 3  # a replica was promoted
    cache.set("after-failover", 1)
    assert cache.get("after-failover") == 1
    assert cache.stats()["redis_up"] == 1


def test_cluster_cross_slot_lock_and_two_tier(redis_cluster: RedisClusterProcesses) -> None:
    a = _cache(redis_cluster, two_tier=True)
    b = _cache(redis_cluster, two_tier=True)
    try:
        calls: list[int] = []
        assert a.get_or_compute("meta:t1", lambda: calls.append(1) or {"t": 1}) == {"t": 1}
        assert b.get_or_compute("meta:t1", lambda: calls.append(1) or {"t": 2}) == {"t": 1}
        assert calls == [1]
        assert a._listener is not None and b._listener is not None
        assert a._listener.connected.wait(10) and b._listener.connected.wait(10)
        a.set("meta:t1", {"t": 3})
        deadline = time.monotonic() + 10
        while b.get("meta:t1") != {"t": 3} and time.monotonic() < deadline:
            time.sleep(0.05)
        assert b.get("meta:t1") == {"t": 3}
    finally:
        a.close()
        b.close()
