"""Memory tier: LRU bounded by entries and bytes, per-entry TTL on an injected clock, tags, thread safety."""

from __future__ import annotations

import threading

import pytest

from tunewatch.cache.memory import MemoryBackend
from tunewatch.clock import ManualClock


def test_lru_by_entries_keeps_recently_read_keys() -> None:
    mem = MemoryBackend(max_entries=3, max_bytes=10_000, clock=ManualClock())
    for k in "abc":
        mem.set(k, b"v", ttl=None)
    assert mem.get("a") == b"v"  # a is now most recent
    mem.set("d", b"v", ttl=None)
    assert mem.get("b") is None
    assert [mem.get(k) for k in "acd"] == [b"v"] * 3
    assert mem.evictions == 1 and len(mem) == 3


def test_bound_by_bytes_counts_key_and_value() -> None:
    mem = MemoryBackend(max_entries=100, max_bytes=30, clock=ManualClock())
    mem.set("k1", b"x" * 10, ttl=None)  # 12 bytes
    mem.set("k2", b"x" * 10, ttl=None)  # 24
    assert mem.bytes == 24
    mem.set("k3", b"x" * 10, ttl=None)  # 36 > 30 → k1 evicted
    assert mem.get("k1") is None and mem.bytes == 24 and mem.evictions == 1
    mem.set("big", b"x" * 100, ttl=None)  # larger than the whole bound: not kept, nothing evicted
    assert mem.get("big") is None and len(mem) == 2


def test_overwrite_replaces_size_and_tags() -> None:
    mem = MemoryBackend(clock=ManualClock())
    mem.set("k", b"x" * 10, ttl=None, tags=["t1"])
    mem.set("k", b"y", ttl=None, tags=["t2"])
    assert mem.bytes == 2
    assert mem.invalidate_tag("t1") == 0 and mem.get("k") == b"y"
    assert mem.invalidate_tag("t2") == 1 and mem.get("k") is None


def test_ttl_per_entry_on_a_manual_clock() -> None:
    clock = ManualClock()
    mem = MemoryBackend(clock=clock)
    mem.set("short", b"1", ttl=5)
    mem.set("long", b"2", ttl=60)
    mem.set("forever", b"3", ttl=None)
    clock.advance(5)
    assert mem.get("short") is None and mem.expired == 1
    clock.advance(1000)
    assert mem.get_many(["short", "long", "forever"]) == [None, None, b"3"]
    assert mem.expired == 2 and mem.evictions == 0


def test_expired_entries_at_the_lru_end_are_counted_as_expired_not_evicted() -> None:
    clock = ManualClock()
    mem = MemoryBackend(max_entries=1, clock=clock)
    mem.set("a", b"1", ttl=1)
    clock.advance(2)
    mem.set("b", b"2", ttl=1)
    assert (mem.expired, mem.evictions) == (1, 0)


def test_tags_and_delete() -> None:
    mem = MemoryBackend(clock=ManualClock())
    mem.set_many({"a": b"1", "b": b"2"}, ttl=None, tags=["window:1", "metrics"])
    mem.set("c", b"3", ttl=None, tags=["metrics"])
    assert sorted(mem.keys_with_tag("metrics")) == ["a", "b", "c"]
    assert mem.invalidate_tag("window:1") == 2
    assert mem.keys_with_tag("metrics") == ["c"]
    assert mem.delete(["c", "missing"]) == 1 and len(mem) == 0 and mem.bytes == 0


def test_rejects_non_positive_bounds() -> None:
    with pytest.raises(ValueError, match="positive"):
        MemoryBackend(max_entries=0)


def test_concurrent_writers_keep_the_accounting_exact() -> None:
    mem = MemoryBackend(max_entries=500, max_bytes=1_000_000, clock=ManualClock())

    def work(t: int) -> None:
        for i in range(2000):
            key = f"k{(t * 7919 + i) % 1500}"
            mem.set(key, b"x" * (i % 50), ttl=None, tags=[f"t{i % 3}"])
            mem.get(f"k{i % 1500}")
            if i % 10 == 0:
                mem.delete([key])

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(mem) <= 500
    keys = {k for tag in ("t0", "t1", "t2") for k in mem.keys_with_tag(tag)}
    assert mem.bytes == sum(len(k) + len(mem.get(k) or b"") for k in keys)
    assert len(keys) == len(mem)
