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

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter

from tunewatch.errors import ConfigError


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
    """A refused request: which limit, and how many seconds until it may retry."""

    scope: str  # "key" or "address"
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
    """Fixed-window limits per key id and per client address; ``storage_url`` selects Redis (``redis://...``)."""

    def __init__(self, *, per_key: str = "", per_address: str = "", storage_url: str | None = None) -> None:
        self.per_key = _parse(per_key, "rate_limit_per_key")
        self.per_address = _parse(per_address, "rate_limit_per_address")
        storage = storage_from_string(storage_url) if storage_url else _RarelyPurgedMemoryStorage()
        if not isinstance(storage, Storage):
            raise ConfigError(f"rate_limit_storage: {storage_url!r} is an async storage; use a synchronous one")
        self.storage: Storage = storage
        self._limiter = FixedWindowRateLimiter(self.storage)

    @property
    def enabled(self) -> bool:
        """Whether any limit is configured."""
        return bool(self.per_key or self.per_address)

    def hit(self, *, key_id: str | None, address: str | None) -> RateLimitExceeded | None:
        """Count one request; return why it is refused, or None when it may proceed."""
        checks: list[tuple[str, str, list[RateLimitItem]]] = []
        if key_id is not None:
            checks.append(("key", key_id, self.per_key))
        if address is not None:
            checks.append(("address", address, self.per_address))
        for scope, ident, items in checks:
            for item in items:
                if not self._limiter.hit(item, scope, ident):
                    reset, _ = self._limiter.get_window_stats(item, scope, ident)
                    wait = max(1, math.ceil(reset - time.time()))
                    return RateLimitExceeded(scope, str(item), wait)
        return None

    def ready(self) -> bool:
        """Whether the storage answers (always true for memory)."""
        try:
            return bool(self.storage.check())
        except Exception:  # a storage backend error means "not ready", whatever its type
            return False
