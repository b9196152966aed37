"""The cache facade: memory, Redis or Redis Cluster behind one API, with read-through and graceful degradation.

Keys are namespaced and versioned (``<namespace>:v<version>:<key>``), so bumping ``version`` after a schema change
makes every old entry unreachable at once. Values go through :class:`~tunewatch.cache.codec.Codec`.

Modes (from :class:`~tunewatch.cache.config.CacheConfig`):

* memory only (default, no server);
* Redis / Redis Cluster, with the memory tier used only while Redis is unavailable;
* ``two_tier``: the memory tier sits in front of Redis (read-through, entries live at most ``two_tier_ttl``);
  writes, deletes and tag invalidations of any process evict the other processes' copies through Redis pub/sub.

Resilience: a Redis error or timeout (bounded by ``timeout_s``) is counted (``errors``, ``redis_errors``), the call
is served from memory, and Redis is left alone for an exponential back-off (``reconnect_backoff_s`` … ``_max_s``)
after which the next call tries it again — the manager reconnects by itself and ``reconnects`` counts it.

>>> cache = MusicStreamingCacheManager()
>>> cache.get_or_compute("track:t1", lambda: {"title": "Song", "duration_ms": 180_000})
{'title': 'Song', 'duration_ms': 180000}
>>> cache.get("track:t1")["title"], cache.stats()["hits"], cache.stats()["misses"]
('Song', 1.0, 1.0)
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from tunewatch.cache.codec import NEGATIVE, Codec, CodecError
from tunewatch.cache.config import CacheConfig
from tunewatch.cache.invalidation import InvalidationListener, decode_message, encode_message
from tunewatch.cache.memory import MemoryBackend
from tunewatch.cache.redis_errors import REDIS_ERRORS
from tunewatch.cache.remote import open_remote
from tunewatch.cache.stats import CacheCounters
from tunewatch.clock import Clock, SystemClock

if TYPE_CHECKING:
    from tunewatch.cache.redis_backend import RedisBackend
    from tunewatch.process.processor import ProcessingResult

log = logging.getLogger(__name__)

T = TypeVar("T")

_LOCK_POLL_MIN_S = 0.005
_LOCK_POLL_MAX_S = 0.1


class MusicStreamingCacheManager:
    """Cache of tunewatch (metric windows, detector checkpoints, track/artist metadata, query results).

    ``MusicStreamingCacheManager(config, **overrides)``: ``overrides`` replace fields of ``config`` (or of the
    environment-derived default), e.g. ``MusicStreamingCacheManager(redis_url="redis://127.0.0.1:6379/0")``.
    ``clock`` drives TTLs, back-off and lock waits (inject a :class:`~tunewatch.clock.ManualClock` in tests).

    >>> from tunewatch.clock import ManualClock
    >>> clock = ManualClock()
    >>> cache = MusicStreamingCacheManager(clock=clock, ttl_default=60)
    >>> cache.set("window:BR", {"plays": 120})
    >>> cache.get("window:BR"), cache.config.backend
    ({'plays': 120}, 'memory')
    >>> clock.advance(61)
    >>> cache.get("window:BR") is None
    True
    """

    def __init__(self, config: CacheConfig | None = None, *, clock: Clock | None = None, **overrides: Any) -> None:
        base = config if config is not None else CacheConfig()
        self.config = CacheConfig.model_validate({**base.model_dump(), **overrides}) if overrides else base
        cfg = self.config
        self.clock: Clock = clock or SystemClock()
        self.codec = Codec(
            compression=cfg.compression, compress_threshold=cfg.compress_threshold, max_value_bytes=cfg.max_value_bytes
        )
        self.memory = MemoryBackend(
            max_entries=cfg.memory_max_entries, max_bytes=cfg.memory_max_bytes, clock=self.clock
        )
        self.remote: RedisBackend | None = None if cfg.backend == "memory" else open_remote(cfg)
        self.counters = CacheCounters()
        self._prefix = f"{cfg.namespace}:v{cfg.version}:"
        self._meta = f"{cfg.namespace}:v{cfg.version}!"
        self._id = uuid.uuid4().hex
        self._state_lock = threading.Lock()
        self._remote_up = True
        self._down_until = 0.0
        self._failures = 0
        self._key_locks: dict[str, list[Any]] = {}  # full key -> [Lock, users]
        self._key_locks_guard = threading.Lock()
        self._listener: InvalidationListener | None = None
        if self.remote is not None and cfg.two_tier:
            self._listener = InvalidationListener(
                self.remote, self.invalidation_channel, self._on_invalidation, on_reconnect=self.memory.clear
            )
            self._listener.start()

    # ----------------------------------------------------------------- keys
    def full_key(self, key: str) -> str:
        """The stored key of ``key``: ``<namespace>:v<version>:<key>``."""
        return self._prefix + key

    def _tag_key(self, tag: str) -> str:
        return f"{self._meta}tag:{tag}"

    def _lock_key(self, full_key: str) -> str:
        return f"{self._meta}lock:{full_key}"

    @property
    def invalidation_channel(self) -> str:
        """Pub/sub channel of two-tier invalidations."""
        return f"{self._meta}invalidate"

    def _ttl(self, ttl: float | None, key: str) -> float:
        if ttl is None:
            return float(self.config.ttl_default)
        if ttl <= 0:
            raise ValueError(f"cache: ttl for key {key!r} must be > 0 seconds, got {ttl}")
        return float(ttl)

    def _encode(self, key: str, value: Any) -> bytes:
        try:
            return self.codec.encode(value)
        except CodecError as exc:
            raise CodecError(f"cache key {key!r}: {exc}") from exc

    # ------------------------------------------------------- remote health
    def _remote(self) -> RedisBackend | None:
        """The Redis backend unless it failed recently (then the caller uses memory)."""
        if self.remote is None or (self._down_until and self.clock.monotonic() < self._down_until):
            return None
        return self.remote

    def _remote_failed(self, op: str, exc: BaseException) -> None:
        assert self.remote is not None
        with self._state_lock:
            self._failures += 1
            pause = min(
                self.config.reconnect_backoff_s * 2 ** (self._failures - 1), self.config.reconnect_backoff_max_s
            )
            self._down_until = self.clock.monotonic() + pause
            was_up, self._remote_up = self._remote_up, False
        self.counters.add(errors=1, redis_errors=1)
        level = logging.WARNING if was_up else logging.DEBUG
        log.log(
            level,
            "cache: %s %s failed (%s: %s); serving from memory, retrying in %.2fs",
            self.remote.describe(),
            op,
            type(exc).__name__,
            exc,
            pause,
        )
        self.remote.reset()

    def _remote_ok(self) -> None:
        if self._remote_up:
            return
        with self._state_lock:
            recovered, self._remote_up = not self._remote_up, True
            self._failures = 0
            self._down_until = 0.0
        if recovered:
            self.counters.add(reconnects=1)
            # memory held the fallback copies of the outage; Redis is the truth again
            self.memory.clear()
            log.warning("cache: %s reachable again", self.remote.describe() if self.remote else "redis")

    @property
    def remote_up(self) -> bool:
        """False while Redis is considered down (the cache serves from memory)."""
        return self.remote is None or self._remote_up

    # --------------------------------------------------------------- reads
    def _decode(self, full_key: str, raw: bytes) -> tuple[bool, Any]:
        ok, value = self.codec.try_decode(raw, key=full_key)
        if not ok:
            self.counters.add(errors=1, decode_errors=1)
        return ok, value

    def _lookup_many(self, full_keys: Sequence[str]) -> list[tuple[bool, Any]]:
        """``(found, value)`` per key; ``value`` may be ``NEGATIVE``. Never raises for backend trouble."""
        out: list[tuple[bool, Any]] = [(False, None)] * len(full_keys)
        remote = self._remote()
        pending = list(range(len(full_keys)))
        if remote is None or self.config.two_tier:
            raws = self.memory.get_many(full_keys)
            pending = []
            for i, raw in enumerate(raws):
                if raw is not None:
                    out[i] = self._decode(full_keys[i], raw)
                    if out[i][0]:
                        continue
                    self.memory.delete([full_keys[i]])
                pending.append(i)
            if len(pending) < len(full_keys):
                self.counters.add(memory_hits=len(full_keys) - len(pending))
        if remote is None or not pending:
            return out
        asked = [full_keys[i] for i in pending]
        try:
            raw_list = [remote.get(asked[0])] if len(asked) == 1 else remote.get_many(asked)
        except REDIS_ERRORS as exc:
            self._remote_failed("read", exc)
            return self._lookup_memory_fallback(full_keys, out, pending)
        self._remote_ok()
        fill: dict[str, bytes] = {}
        for i, raw in zip(pending, raw_list, strict=True):
            if raw is not None:
                out[i] = self._decode(full_keys[i], raw)
                if out[i][0]:
                    fill[full_keys[i]] = raw
        if fill:
            self.counters.add(remote_hits=len(fill))
        if fill and self.config.two_tier:
            self.memory.set_many(fill, ttl=self.config.two_tier_ttl)
        return out

    def _lookup_memory_fallback(
        self, full_keys: Sequence[str], out: list[tuple[bool, Any]], pending: list[int]
    ) -> list[tuple[bool, Any]]:
        if self.config.two_tier:
            return out  # memory was already consulted
        raws = self.memory.get_many([full_keys[i] for i in pending])
        for i, raw in zip(pending, raws, strict=True):
            if raw is not None:
                out[i] = self._decode(full_keys[i], raw)
                if out[i][0]:
                    self.counters.add(memory_hits=1)
        return out

    def get(self, key: str, default: Any = None) -> Any:
        """The cached value of ``key``, or ``default`` (also for a negative entry, a corrupt value or a failure)."""
        start = time.perf_counter()
        found, value = self._lookup_many([self.full_key(key)])[0]
        self.counters.read(int(found), int(not found), time.perf_counter() - start)
        if found and value is NEGATIVE:
            self.counters.add(negative_hits=1)
            return default
        return value if found else default

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """``{key: value}`` for every key of ``keys`` that is cached (negative entries left out)."""
        start = time.perf_counter()
        keys = list(dict.fromkeys(keys))
        results = self._lookup_many([self.full_key(k) for k in keys])
        found = {k: v for k, (ok, v) in zip(keys, results, strict=True) if ok and v is not NEGATIVE}
        hits = sum(ok for ok, _ in results)
        self.counters.read(hits, len(keys) - hits, time.perf_counter() - start)
        return found

    # -------------------------------------------------------------- writes
    def _write(self, items: Mapping[str, bytes], ttl_s: float, tags: Sequence[str]) -> None:
        remote = self._remote()
        if remote is not None:
            try:
                px = max(1, round(ttl_s * 1000))
                remote.set_many(items, px, [self._tag_key(t) for t in tags], tag_ttl_ms=px)
            except REDIS_ERRORS as exc:
                self._remote_failed("write", exc)
            else:
                self._remote_ok()
                if self.config.two_tier:
                    self.memory.set_many(items, min(ttl_s, self.config.two_tier_ttl), tags)
                    self._publish(keys=list(items))
                return
        self.memory.set_many(items, ttl_s, tags)

    def set(self, key: str, value: Any, ttl: float | None = None, tags: Iterable[str] = ()) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds (default ``ttl_default``), listed under ``tags``.

        Raises :class:`~tunewatch.cache.codec.CodecError` (naming the key) if the value cannot be serialised.
        """
        ttl_s = self._ttl(ttl, key)
        self._write({self.full_key(key): self._encode(key, value)}, ttl_s, tuple(tags))
        self.counters.add(sets=1)

    def set_many(self, items: Mapping[str, Any], ttl: float | None = None, tags: Iterable[str] = ()) -> int:
        """Store every ``key -> value`` of ``items`` (one pipeline round trip); returns how many."""
        if not items:
            return 0
        ttl_s = self._ttl(ttl, "<many>")
        encoded = {self.full_key(k): self._encode(k, v) for k, v in items.items()}
        self._write(encoded, ttl_s, tuple(tags))
        self.counters.add(sets=len(encoded))
        return len(encoded)

    def delete(self, *keys: str) -> int:
        """Remove ``keys`` from every tier; returns how many existed (in Redis when it is used)."""
        full = [self.full_key(k) for k in keys]
        removed = self.memory.delete(full)
        remote = self._remote()
        if remote is not None:
            try:
                removed = remote.delete(full)
            except REDIS_ERRORS as exc:
                self._remote_failed("delete", exc)
            else:
                self._remote_ok()
                self._publish(keys=full)
        self.counters.add(deletes=len(full))
        return removed

    def invalidate_tag(self, tag: str) -> int:
        """Remove every entry stored with ``tag`` (in Redis through its tag set); returns how many keys."""
        removed = self.memory.invalidate_tag(tag)
        remote = self._remote()
        if remote is not None:
            try:
                members = remote.invalidate_tag(self._tag_key(tag))
            except REDIS_ERRORS as exc:
                self._remote_failed("invalidate_tag", exc)
            else:
                self._remote_ok()
                self.memory.delete(members)
                removed = len(members)
                self._publish(tag=tag, keys=members)
        self.counters.add(invalidations=1)
        return removed

    # ------------------------------------------------- two-tier invalidation
    def _publish(self, *, keys: Sequence[str] = (), tag: str | None = None) -> None:
        if not self.config.two_tier or self.remote is None:
            return
        try:
            self.remote.publish(self.invalidation_channel, encode_message(self._id, list(keys), tag))
        except REDIS_ERRORS as exc:
            self._remote_failed("publish", exc)

    def _on_invalidation(self, payload: bytes) -> None:
        message = decode_message(payload)
        if message is None or message.sender == self._id:
            return
        self.memory.delete(message.keys)
        if message.tag is not None:
            self.memory.invalidate_tag(message.tag)

    # ---------------------------------------------------------- read-through
    @contextmanager
    def _key_lock(self, full_key: str) -> Iterator[None]:
        with self._key_locks_guard:
            entry = self._key_locks.get(full_key)
            if entry is None:
                entry = self._key_locks[full_key] = [threading.Lock(), 0]
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._key_locks_guard:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._key_locks[full_key]

    def _wait_for_remote_lock(self, full_key: str, token: str) -> tuple[bool, bool, Any]:
        """Take the cross-process lock or wait for its holder's value: ``(locked, found, value)``."""
        remote = self._remote()
        if remote is None:
            return False, False, None
        lock_key = self._lock_key(full_key)
        deadline = self.clock.monotonic() + self.config.lock_wait_s
        delay = _LOCK_POLL_MIN_S
        while True:
            try:
                if remote.acquire_lock(lock_key, token, self.config.lock_ttl_ms):
                    found, value = self._lookup_many([full_key])[0]  # the holder may have finished meanwhile
                    return True, found, value
            except REDIS_ERRORS as exc:
                self._remote_failed("lock", exc)
                return False, False, None
            found, value = self._lookup_many([full_key])[0]
            if found:
                return False, True, value
            if self.clock.monotonic() >= deadline:
                log.warning(
                    "cache: waited %.1fs for another process computing %r; computing here",
                    self.config.lock_wait_s,
                    full_key,
                )
                return False, False, None
            self.clock.sleep(delay)
            delay = min(delay * 2, _LOCK_POLL_MAX_S)

    def get_or_compute(
        self,
        key: str,
        compute: Callable[[], T | None],
        ttl: float | None = None,
        tags: Iterable[str] = (),
        negative_ttl: float | None = None,
    ) -> T | None:
        """The cached value of ``key``, else ``compute()`` stored for ``ttl`` — computed once per key at a time.

        Concurrent callers for one key wait for a single computation: threads through a per-key lock, processes
        through a Redis ``SET NX PX`` lock (when Redis is configured). ``None`` from ``compute`` is cached as a
        negative entry for ``negative_ttl`` (default ``config.negative_ttl``), so a missing track is not looked
        up again on every call. An exception from ``compute`` propagates and nothing is cached.
        """
        full = self.full_key(key)
        start = time.perf_counter()
        found, value = self._lookup_many([full])[0]
        if not found:
            with self._key_lock(full):
                found, value = self._lookup_many([full])[0]
                if not found:
                    token = uuid.uuid4().hex
                    locked, found, value = self._wait_for_remote_lock(full, token)
                    try:
                        if not found:
                            self.counters.read(0, 1, time.perf_counter() - start)
                            return self._compute_and_store(key, compute, ttl, tags, negative_ttl)
                    finally:
                        if locked:
                            self._release_remote_lock(full, token)
        self.counters.read(1, 0, time.perf_counter() - start)
        if value is NEGATIVE:
            self.counters.add(negative_hits=1)
            return None
        result: T = value
        return result

    def _compute_and_store(
        self,
        key: str,
        compute: Callable[[], T | None],
        ttl: float | None,
        tags: Iterable[str],
        negative_ttl: float | None,
    ) -> T | None:
        value = compute()
        self.counters.add(computes=1)
        if value is None:
            self.set(key, NEGATIVE, ttl=negative_ttl or self.config.negative_ttl, tags=tags)
        else:
            self.set(key, value, ttl=ttl, tags=tags)
        return value

    def _release_remote_lock(self, full_key: str, token: str) -> None:
        remote = self._remote()
        if remote is None:
            return  # the lock expires by itself after lock_ttl_ms
        try:
            remote.release_lock(self._lock_key(full_key), token)
        except REDIS_ERRORS as exc:
            self._remote_failed("unlock", exc)

    # ------------------------------------------------------------ pipeline
    def store(self, result: ProcessingResult) -> int:
        """Cache the metric windows of ``result`` (``result.cache_items()``) with the default TTL and tag
        ``metrics``; returns the number of entries stored."""
        return self.set_many(result.cache_items(), tags=("metrics",))

    def stats(self) -> dict[str, float]:
        """Counters for ``PrometheusMetricsManager.record_cache``: hits, misses, hit_ratio, evictions, bytes,
        entries, errors, latency (mean seconds per read) and more."""
        out = self.counters.snapshot()
        out["evictions"] = float(self.memory.evictions)
        out["expired"] = float(self.memory.expired)
        out["bytes"] = float(self.memory.bytes)
        out["entries"] = float(len(self.memory))
        out["redis_up"] = 1.0 if self.remote_up else 0.0
        return out

    def close(self) -> None:
        """Stop the invalidation listener and close Redis connections."""
        if self._listener is not None:
            self._listener.stop()
        if self.remote is not None:
            self.remote.close()

    def __enter__(self) -> MusicStreamingCacheManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
