"""Rate limiting per API key and per client address: in-process counters, or the ``limits`` library's shared
storage (Redis) for several processes.

Limits are strings in ``limits``' notation (``"100/second"``, ``"5000/minute;200/second"``); an empty string
disables that limit. A refused hit says how long to wait (``Retry-After``, whole seconds, at least 1).

>>> limiter = RateLimiter(per_key="2/minute", per_address="")
>>> limiter.hit(key_id="k", address="127.0.0.1"), limiter.hit(key_id="k", address="127.0.0.1")
(None, None)
>>> limiter.hit(key_id="k", address="127.0.0.1") is not None
True
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from limits import RateLimitItem, parse_many
from limits.storage import Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter

from tunewatch.errors import ConfigError

logger = logging.getLogger(__name__)


class MemoryWindows:
    """Fixed-window counters in this process: the limits without shared storage, and the stand-in while it is down.

    The rule of ``limits``' fixed window over its in-memory storage: a window opens at a key's first hit and lasts
    the limit's period; every hit counts (a refused one too) and is allowed while the count is at most the limit;
    :meth:`test` allows while it is below. One dictionary lookup per hit under one lock, where ``limits`` builds a
    key string, takes a per-key lock and schedules a purge thread: about a tenth of the cost. An expired window is
    dropped when it is next read, and every expired one at most once a second (memory bounded by the keys seen in
    the last period), on the calling thread.

    >>> from limits import parse
    >>> windows, item = MemoryWindows(), parse("2/minute")
    >>> [windows.hit(item, "address", "a") for _ in range(3)], windows.test(item, "address", "b")
    ([True, True, False], True)
    """

    PURGE_EVERY_S = 1.0

    def __init__(self) -> None:
        self._windows: dict[tuple[str, ...], list[float]] = {}  # key -> [window end (epoch s), count]
        self._lock = threading.Lock()
        self._next_purge = 0.0

    def __len__(self) -> int:
        """Windows held (open, or expired but not yet purged)."""
        return len(self._windows)

    @staticmethod
    def _key(item: RateLimitItem, identifiers: tuple[str, ...]) -> tuple[str, ...]:
        return (str(item.amount), str(item.get_expiry()), *identifiers)

    def _count(self, key: tuple[str, ...], now: float) -> list[float] | None:
        """The open window of ``key`` (caller holds the lock); purges expired windows once a second."""
        if now >= self._next_purge:
            self._next_purge = now + self.PURGE_EVERY_S
            self._windows = {k: w for k, w in self._windows.items() if w[0] > now}
        window = self._windows.get(key)
        return window if window is not None and window[0] > now else None

    def decide(
        self, rules: tuple[LimitRule, ...], scope: str, ident: str, count: bool
    ) -> tuple[LimitRule, float] | None:
        """Count one hit (``count``) or test, for ``rules`` in order under one lock: the first rule that refuses
        and the end of its window (epoch seconds), or None. The same decisions as :meth:`hit` / :meth:`test`
        item by item (a refused hit counts, the rules after it are not hit), without building a key per call."""
        now = time.time()
        with self._lock:
            if now >= self._next_purge:
                self._next_purge = now + self.PURGE_EVERY_S
                self._windows = {k: w for k, w in self._windows.items() if w[0] > now}
            windows = self._windows
            for rule in rules:
                key = (*rule.key, scope, ident)
                window = windows.get(key)
                if window is None or window[0] <= now:
                    if not count:
                        continue
                    window = windows[key] = [now + rule.period, 0.0]
                if count:
                    window[1] += 1
                    if window[1] > rule.amount:
                        return rule, window[0]
                elif window[1] >= rule.amount:
                    return rule, window[0]
        return None

    def hit(self, item: RateLimitItem, *identifiers: str) -> bool:
        """Count one hit; whether it is within the limit."""
        key = self._key(item, identifiers)
        now = time.time()
        with self._lock:
            window = self._count(key, now)
            if window is None:
                window = self._windows[key] = [now + item.get_expiry(), 0.0]
            window[1] += 1
            return window[1] <= item.amount

    def test(self, item: RateLimitItem, *identifiers: str) -> bool:
        """Whether one more hit would be within the limit (nothing counted)."""
        now = time.time()
        with self._lock:
            window = self._count(self._key(item, identifiers), now)
        return window is None or window[1] < item.amount

    def get_window_stats(self, item: RateLimitItem, *identifiers: str) -> tuple[float, int]:
        """When the current window ends (epoch seconds; now without one) and the hits left in it."""
        now = time.time()
        with self._lock:
            window = self._count(self._key(item, identifiers), now)
        if window is None:
            return now, item.amount
        return window[0], max(0, item.amount - int(window[1]))


class _Strategy(Protocol):
    """What :meth:`RateLimiter._run` needs of a fixed-window strategy (``limits``' or :class:`MemoryWindows`)."""

    def hit(self, item: RateLimitItem, *identifiers: str) -> bool: ...

    def test(self, item: RateLimitItem, *identifiers: str) -> bool: ...

    def get_window_stats(self, item: RateLimitItem, *identifiers: str) -> tuple[float, int]: ...


@dataclass(frozen=True, slots=True)
class RateLimitExceeded:
    """A refused request: which limit, and how many seconds until it may retry.

    >>> limiter = RateLimiter(per_key="1/minute", per_address="")
    >>> _ = limiter.hit(key_id="k", address="a")
    >>> refused = limiter.hit(key_id="k", address="a")
    >>> refused.scope, refused.limit, 0 < refused.retry_after_s <= 60
    ('key', '1 per 1 minute', True)
    """

    scope: str  # "key", "address" or "auth_failures"
    limit: str
    retry_after_s: int


@dataclass(frozen=True, slots=True)
class LimitRule:
    """One limit with what the in-process counters need of it worked out once: its key prefix in
    :class:`MemoryWindows` (the one :meth:`MemoryWindows._key` builds per call), amount, period and text.

    >>> from limits import parse
    >>> rule = LimitRule.of(parse("100/minute"))
    >>> rule.amount, rule.period, rule.key
    (100, 60, ('100', '60'))
    """

    item: RateLimitItem
    key: tuple[str, str]
    amount: int
    period: int
    text: str

    @classmethod
    def of(cls, item: RateLimitItem) -> LimitRule:
        """The rule of a ``limits`` item."""
        return cls(item, (str(item.amount), str(item.get_expiry())), item.amount, item.get_expiry(), str(item))


def _refused(scope: str, found: tuple[LimitRule, float] | None) -> RateLimitExceeded | None:
    if found is None:
        return None
    rule, reset = found
    return RateLimitExceeded(scope, rule.text, max(1, math.ceil(reset - time.time())))


def _parse(text: str, name: str) -> list[RateLimitItem]:
    if not text.strip():
        return []
    try:
        return list(parse_many(text))
    except ValueError as exc:
        raise ConfigError(f"{name}: {text!r} is not a rate limit (use e.g. 100/second or 5000/minute)") from exc


class RateLimiter:
    """Fixed-window limits per key id, per client address and on failed authentications per address.

    ``storage_url`` selects shared storage (``redis://...``, several processes share the counts). Shared storage
    fails safe: each call has ``timeout_s`` (socket timeouts, and :meth:`ahit` runs it in a worker thread, off the
    event loop); when it fails or times out the limits are kept in memory instead, for ``retry_s`` seconds before
    the storage is tried again. That is logged once per outage and counted in :attr:`fallbacks` (and by
    ``on_fallback``, which the service points at its ``/metrics``); a request is never refused or delayed
    because the storage is down.

    >>> limiter = RateLimiter(per_key="", per_address="3/second")
    >>> [limiter.hit(key_id=None, address="198.51.100.7") is None for _ in range(4)]
    [True, True, True, False]
    """

    def __init__(
        self,
        *,
        per_key: str = "",
        per_address: str = "",
        auth_failures: str = "",
        storage_url: str | None = None,
        timeout_s: float = 0.25,
        retry_s: float = 5.0,
    ) -> None:
        self.per_key = _parse(per_key, "rate_limit_per_key")
        self.per_address = _parse(per_address, "rate_limit_per_address")
        self.auth_failures = _parse(auth_failures, "auth_failures_per_address")
        self._key_rules = tuple(LimitRule.of(item) for item in self.per_key)
        self._address_rules = tuple(LimitRule.of(item) for item in self.per_address)
        self._auth_rules = tuple(LimitRule.of(item) for item in self.auth_failures)
        self.timeout_s = timeout_s
        self.retry_s = retry_s
        #: the in-process counters (all of the limits without shared storage; its stand-in while it is down)
        self.memory = MemoryWindows()
        self._remote: FixedWindowRateLimiter | None = None
        self.storage: Storage | None = None  #: the shared storage, if any
        if storage_url:
            options = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s}
            redis_like = storage_url.split(":", 1)[0].startswith(("redis", "valkey"))
            storage = storage_from_string(storage_url, **(options if redis_like else {}))
            if not isinstance(storage, Storage):
                raise ConfigError(f"rate_limit_storage: {storage_url!r} is an async storage; use a synchronous one")
            self.storage = storage
            self._remote = FixedWindowRateLimiter(storage)
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="tunewatch-ratelimit")
        self._down_until = 0.0
        self._state_lock = threading.Lock()
        #: decisions taken by the in-memory limits because the shared storage failed or timed out
        self.fallbacks = 0
        self.on_fallback: Callable[[], None] | None = None

    @property
    def enabled(self) -> bool:
        """Whether any request limit is configured (failed-authentication limits aside)."""
        return bool(self.per_key or self.per_address)

    @property
    def degraded(self) -> bool:
        """Whether shared storage is configured but the in-memory limits stand in for it now."""
        return self._remote is not None and time.monotonic() < self._down_until

    # ------------------------------------------------------------------------------------------ checks

    def _checks(self, key_id: str | None, address: str | None) -> list[tuple[str, str, list[RateLimitItem]]]:
        checks: list[tuple[str, str, list[RateLimitItem]]] = []
        if key_id is not None and self.per_key:
            checks.append(("key", key_id, self.per_key))
        if address is not None and self.per_address:
            checks.append(("address", address, self.per_address))
        return checks

    @staticmethod
    def _run(
        limiter: _Strategy, checks: list[tuple[str, str, list[RateLimitItem]]], count: bool
    ) -> RateLimitExceeded | None:
        for scope, ident, items in checks:
            for item in items:
                allowed = limiter.hit(item, scope, ident) if count else limiter.test(item, scope, ident)
                if not allowed:
                    reset, _ = limiter.get_window_stats(item, scope, ident)
                    return RateLimitExceeded(scope, str(item), max(1, math.ceil(reset - time.time())))
        return None

    def _fell_back(self, exc: BaseException) -> None:
        with self._state_lock:
            first = time.monotonic() >= self._down_until
            self._down_until = time.monotonic() + self.retry_s
            self.fallbacks += 1
        if first:
            logger.warning(
                "rate-limit storage failed (%s): limits kept in memory for %.0f s", type(exc).__name__, self.retry_s
            )
        if self.on_fallback is not None:
            self.on_fallback()

    def _decide(self, checks: list[tuple[str, str, list[RateLimitItem]]], count: bool) -> RateLimitExceeded | None:
        """Blocking decision (at most ``timeout_s`` per storage call), falling back to memory."""
        if not checks:
            return None
        if self._remote is not None and time.monotonic() >= self._down_until:
            try:
                return self._run(self._remote, checks, count)
            except Exception as exc:  # any storage failure (connection, timeout, protocol) means: memory instead
                self._fell_back(exc)
        elif self._remote is not None:
            self._count_fallback()
        return self._run(self.memory, checks, count)

    def _count_fallback(self) -> None:
        with self._state_lock:
            self.fallbacks += 1
        if self.on_fallback is not None:
            self.on_fallback()

    async def _adecide(
        self, checks: list[tuple[str, str, list[RateLimitItem]]], count: bool
    ) -> RateLimitExceeded | None:
        """:meth:`_decide` off the event loop when shared storage is used (memory decides inline)."""
        if not checks:
            return None
        if self._remote is None or time.monotonic() < self._down_until:
            if self._remote is not None:
                self._count_fallback()
            return self._run(self.memory, checks, count)
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(
                loop.run_in_executor(self._executor, self._run, self._remote, checks, count), self.timeout_s * 2
            )
        except Exception as exc:  # the storage failed or is frozen: decide in memory, never fail the request
            self._fell_back(exc)
            return self._run(self.memory, checks, count)

    def _hit_memory(self, key_id: str | None, address: str | None) -> RateLimitExceeded | None:
        """:meth:`hit` without shared storage: the same checks as :meth:`_checks` lists, in its order."""
        memory = self.memory
        if key_id is not None and self._key_rules:
            refused = memory.decide(self._key_rules, "key", key_id, True)
            if refused is not None:
                return _refused("key", refused)
        if address is not None and self._address_rules:
            return _refused("address", memory.decide(self._address_rules, "address", address, True))
        return None

    def hit(self, *, key_id: str | None, address: str | None) -> RateLimitExceeded | None:
        """Count one request (blocking); return why it is refused, or None when it may proceed."""
        if self._remote is None:
            return self._hit_memory(key_id, address)
        return self._decide(self._checks(key_id, address), True)

    async def ahit(self, *, key_id: str | None = None, address: str | None = None) -> RateLimitExceeded | None:
        """:meth:`hit` for the event loop (shared storage is called in a worker thread, with a timeout; without
        it the in-process counters decide inline)."""
        if self._remote is None:
            return self._hit_memory(key_id, address)
        return await self._adecide(self._checks(key_id, address), True)

    async def auth_blocked(self, address: str | None) -> RateLimitExceeded | None:
        """Whether ``address`` has used up its failed authentications (checked before a key is looked at)."""
        if address is None or not self.auth_failures:
            return None
        if self._remote is None:
            return _refused("auth_failures", self.memory.decide(self._auth_rules, "auth_failures", address, False))
        return await self._adecide([("auth_failures", address, self.auth_failures)], False)

    async def auth_failed(self, address: str | None) -> None:
        """Count a failed authentication from ``address``."""
        if address is not None and self.auth_failures:
            if self._remote is None:
                self.memory.decide(self._auth_rules, "auth_failures", address, True)
                return
            await self._adecide([("auth_failures", address, self.auth_failures)], True)

    def ready(self) -> bool:
        """Whether the shared storage answers now (memory always does); never blocks longer than ``timeout_s``."""
        if self._remote is None or self.storage is None:
            return True
        if self.degraded:
            return False
        try:
            return bool(self._executor.submit(self.storage.check).result(timeout=self.timeout_s * 2))
        except Exception:  # a storage backend error or timeout means "not reachable", whatever its type
            return False
