"""Rate limiting per API key and per client address with the ``limits`` library (memory or Redis storage).

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

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter

from tunewatch.errors import ConfigError

logger = logging.getLogger(__name__)


class _RarelyPurgedMemoryStorage(MemoryStorage):
    """``limits``' in-memory storage, purging expired counters in the background at most once a second.

    The parent starts a 10 ms ``threading.Timer`` on every hit when none is running: under load about a hundred
    thread starts a second, each on the event loop's thread (about a fifth of an ingest request's cost). An
    expired counter is already dropped when it is read, so the background purge only bounds the memory of keys
    never seen again, and running it once a second is enough. (Should a later ``limits`` rename the hook, the
    parent's behaviour simply applies: correct, only slower.)
    """

    PURGE_EVERY_S = 1.0

    def __init__(self) -> None:
        super().__init__()
        self._next_purge = 0.0

    def _MemoryStorage__schedule_expiry(self) -> None:
        now = time.monotonic()
        if now >= self._next_purge:
            self._next_purge = now + self.PURGE_EVERY_S
            MemoryStorage._MemoryStorage__schedule_expiry(self)  # type: ignore[attr-defined]


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
        self.timeout_s = timeout_s
        self.retry_s = retry_s
        self.memory: Storage = _RarelyPurgedMemoryStorage()
        self._memory = FixedWindowRateLimiter(self.memory)
        self._remote: FixedWindowRateLimiter | None = None
        self.storage: Storage = self.memory
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
        limiter: FixedWindowRateLimiter, checks: list[tuple[str, str, list[RateLimitItem]]], count: bool
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
        return self._run(self._memory, checks, count)

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
            return self._run(self._memory, checks, count)
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(
                loop.run_in_executor(self._executor, self._run, self._remote, checks, count), self.timeout_s * 2
            )
        except Exception as exc:  # the storage failed or is frozen: decide in memory, never fail the request
            self._fell_back(exc)
            return self._run(self._memory, checks, count)

    def hit(self, *, key_id: str | None, address: str | None) -> RateLimitExceeded | None:
        """Count one request (blocking); return why it is refused, or None when it may proceed."""
        return self._decide(self._checks(key_id, address), True)

    async def ahit(self, *, key_id: str | None = None, address: str | None = None) -> RateLimitExceeded | None:
        """:meth:`hit` for the event loop (shared storage is called in a worker thread, with a timeout)."""
        return await self._adecide(self._checks(key_id, address), True)

    async def auth_blocked(self, address: str | None) -> RateLimitExceeded | None:
        """Whether ``address`` has used up its failed authentications (checked before a key is looked at)."""
        if address is None or not self.auth_failures:
            return None
        return await self._adecide([("auth_failures", address, self.auth_failures)], False)

    async def auth_failed(self, address: str | None) -> None:
        """Count a failed authentication from ``address``."""
        if address is not None and self.auth_failures:
            await self._adecide([("auth_failures", address, self.auth_failures)], True)

    def ready(self) -> bool:
        """Whether the shared storage answers now (memory always does); never blocks longer than ``timeout_s``."""
        if self._remote is None:
            return True
        if self.degraded:
            return False
        try:
            return bool(self._executor.submit(self.storage.check).result(timeout=self.timeout_s * 2))
        except Exception:  # a storage backend error or timeout means "not reachable", whatever its type
            return False
