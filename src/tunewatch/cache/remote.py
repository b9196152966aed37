"""The Redis tier, loaded only when configured: ``pip install 'tunewatch[redis]'`` adds redis-py.

:func:`open_remote` builds the backend, or says which extra to install (what a Redis call may raise is
:data:`tunewatch.cache.redis_errors.REDIS_ERRORS`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tunewatch.cache.config import CacheConfig
from tunewatch.errors import ConfigError

if TYPE_CHECKING:
    from tunewatch.cache.redis_backend import RedisBackend


def open_remote(config: CacheConfig) -> RedisBackend:
    """The Redis / Redis Cluster backend of ``config``; :class:`ConfigError` if redis-py is not installed."""
    try:
        from tunewatch.cache.redis_backend import RedisBackend
    except ImportError:
        raise ConfigError(
            "cache: a Redis backend is configured (TUNEWATCH_CACHE_*), but the redis package is not installed; "
            "install it with: pip install 'tunewatch[redis]'"
        ) from None
    return RedisBackend(config)
