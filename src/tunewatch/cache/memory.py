"""In-process cache tier: an LRU bounded by entry count AND bytes, with a TTL per entry and a tag index.

Values are the codec's bytes (never live objects), so a caller can't mutate a cached value by accident and the
byte bound is exact: an entry costs ``len(key) + len(value)``. Expired entries are dropped when read and when
they reach the LRU end; capacity evictions are counted. Thread-safe (one lock; every operation is O(1) per
key). ``functools.lru_cache``/``cachetools`` bound entries or size but not both with a per-entry TTL and tags,
hence this small class.

>>> from tunewatch.clock import ManualClock
>>> clock = ManualClock()
>>> mem = MemoryBackend(max_entries=2, max_bytes=1_000, clock=clock)
>>> mem.set("a", b"1", ttl=10); mem.set("b", b"2", ttl=10); mem.set("c", b"3", ttl=10)
>>> mem.get("a"), mem.get("c"), mem.evictions
(None, b'3', 1)
>>> clock.advance(11); mem.get("c")
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from tunewatch.clock import Clock, SystemClock


class _Entry(NamedTuple):
    value: bytes
    expires_at: float  # clock seconds; inf = no expiry
    tags: tuple[str, ...]


class MemoryBackend:
    """Bounded LRU of ``key -> bytes`` with per-entry TTL (seconds, ``None`` = never expires).

    >>> mem = MemoryBackend(max_entries=10)
    >>> mem.set_many({"a": b"1", "b": b"2"}, ttl=None, tags=["t"])
    >>> mem.get_many(["a", "b", "c"]), len(mem)
    ([b'1', b'2', None], 2)
    """

    def __init__(self, *, max_entries: int = 100_000, max_bytes: int = 256 * 1024 * 1024, clock: Clock | None = None):
        if max_entries <= 0 or max_bytes <= 0:
            raise ValueError("MemoryBackend: max_entries and max_bytes must be positive")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.clock: Clock = clock or SystemClock()
        self._data: OrderedDict[str, _Entry] = OrderedDict()
        self._tags: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self.bytes = 0
        self.evictions = 0
        self.expired = 0

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str) -> bytes | None:
        """The live value of ``key`` (marking it recently used), or ``None``."""
        now = self.clock.monotonic()
        with self._lock:
            return self._get_locked(key, now)

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Values of ``keys`` in order; ``None`` for each miss."""
        now = self.clock.monotonic()
        with self._lock:
            return [self._get_locked(k, now) for k in keys]

    def _get_locked(self, key: str, now: float) -> bytes | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry.expires_at <= now:
            self._remove_locked(key)
            self.expired += 1
            return None
        self._data.move_to_end(key)
        return entry.value

    def set(self, key: str, value: bytes, ttl: float | None, tags: Iterable[str] = ()) -> None:
        """Store ``value`` for ``ttl`` seconds; a value larger than the whole byte bound is not kept."""
        expires = float("inf") if ttl is None else self.clock.monotonic() + ttl
        tag_tuple = tuple(tags)
        with self._lock:
            self._set_locked(key, value, expires, tag_tuple)
            self._shrink_locked()

    def set_many(self, items: Mapping[str, bytes], ttl: float | None, tags: Iterable[str] = ()) -> None:
        """Store every ``key -> value`` of ``items`` with the same TTL and tags."""
        expires = float("inf") if ttl is None else self.clock.monotonic() + ttl
        tag_tuple = tuple(tags)
        with self._lock:
            for key, value in items.items():
                self._set_locked(key, value, expires, tag_tuple)
            self._shrink_locked()

    def _set_locked(self, key: str, value: bytes, expires: float, tags: tuple[str, ...]) -> None:
        if key in self._data:
            self._remove_locked(key)
        size = len(key) + len(value)
        if size > self.max_bytes:
            return
        self._data[key] = _Entry(value, expires, tags)
        self.bytes += size
        for tag in tags:
            self._tags.setdefault(tag, set()).add(key)

    def _shrink_locked(self) -> None:
        now = self.clock.monotonic()
        while len(self._data) > self.max_entries or self.bytes > self.max_bytes:
            key, entry = next(iter(self._data.items()))
            self._remove_locked(key)
            if entry.expires_at <= now:
                self.expired += 1
            else:
                self.evictions += 1

    def _remove_locked(self, key: str) -> bool:
        entry = self._data.pop(key, None)
        if entry is None:
            return False
        self.bytes -= len(key) + len(entry.value)
        for tag in entry.tags:
            keys = self._tags.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._tags[tag]
        return True

    def delete(self, keys: Iterable[str]) -> int:
        """Remove ``keys``; returns how many were present."""
        with self._lock:
            return sum(self._remove_locked(k) for k in keys)

    def keys_with_tag(self, tag: str) -> list[str]:
        """Keys currently stored under ``tag``."""
        with self._lock:
            return list(self._tags.get(tag, ()))

    def invalidate_tag(self, tag: str) -> int:
        """Remove every entry stored under ``tag``; returns how many."""
        with self._lock:
            return sum(self._remove_locked(k) for k in list(self._tags.get(tag, ())))

    def clear(self) -> None:
        """Drop everything (counters are kept)."""
        with self._lock:
            self._data.clear()
            self._tags.clear()
            self.bytes = 0
