"""What a call to Redis may raise: redis-py's errors when it is installed, else just ``OSError`` (no call is made
then). The cache manager and the invalidation listener turn these into a degraded, memory-only mode.

>>> OSError in REDIS_ERRORS
True
"""

from __future__ import annotations


def _redis_errors() -> tuple[type[BaseException], ...]:
    try:
        from redis.exceptions import RedisClusterException, RedisError
    except ImportError:
        return (OSError,)
    return (RedisError, RedisClusterException, OSError)


REDIS_ERRORS: tuple[type[BaseException], ...] = _redis_errors()
"""What a Redis call may raise when the server is down, slow, failing over or unreachable."""
