"""Code run in child processes by the cross-process stampede test (importable under the spawn start method)."""

from __future__ import annotations

import time

import redis

from tunewatch.cache import MusicStreamingCacheManager


def compute_once(url: str, start_at: float) -> object:
    """Wait for a common start instant, then read-through one key; the computation counts itself in Redis."""
    cache = MusicStreamingCacheManager(redis_url=url, lock_wait_s=30)
    counter = redis.Redis.from_url(url)

    def compute() -> dict[str, int]:
        counter.incr("test:computations")
        time.sleep(0.3)  # a slow query, so the other processes arrive while it runs
        return {"answer": 42}

    time.sleep(max(0.0, start_at - time.time()))
    return cache.get_or_compute("expensive", compute)
