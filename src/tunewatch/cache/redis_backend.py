"""Remote cache tier: redis-py ``Redis`` or ``RedisCluster`` with bounded socket timeouts.

Reads use ``MGET`` (cluster: ``mget_nonatomic``, split by slot), writes a non-transactional pipeline of
``SET … PX`` (plus the tag sets), so a batch costs one round trip per node. Every method may raise one of
:data:`REDIS_ERRORS`; the manager turns those into a degraded (memory-only) mode. The client is created on first
use, so a Redis that is down when the process starts is not fatal. Connection strings are never logged.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry

from tunewatch.cache.config import CacheConfig
from tunewatch.cache.redis_errors import REDIS_ERRORS

_RELEASE_LOCK = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""

RedisClient = redis.Redis | RedisCluster


def _build_client(config: CacheConfig) -> RedisClient:
    common: dict[str, Any] = {
        "socket_timeout": config.timeout_s,
        "socket_connect_timeout": config.timeout_s,
        "retry": Retry(NoBackoff(), 1),  # one immediate retry (stale pooled socket), no sleeping
    }
    if config.redis_cluster:
        if config.cluster_nodes:
            nodes = [ClusterNode(h, int(p)) for h, _, p in (n.rpartition(":") for n in config.cluster_nodes)]
            return RedisCluster(startup_nodes=nodes, require_full_coverage=False, **common)
        assert config.redis_url is not None  # guaranteed by CacheConfig
        return RedisCluster.from_url(config.redis_url, require_full_coverage=False, **common)
    assert config.redis_url is not None
    return redis.Redis.from_url(config.redis_url, health_check_interval=0, **common)


class RedisBackend:
    """``key -> bytes`` on Redis or Redis Cluster; keys are full (already namespaced) Redis keys.

    The client connects on first use, so building one needs no server:

    >>> from tunewatch.cache.config import CacheConfig
    >>> RedisBackend(CacheConfig(redis_cluster=True, cluster_nodes=["127.0.0.1:7000", "127.0.0.1:7001"])).describe()
    'redis-cluster (2 seed node(s))'
    """

    def __init__(self, config: CacheConfig) -> None:
        if config.backend == "memory":
            raise ValueError("RedisBackend: configuration has neither redis_url nor redis_cluster")
        self.config = config
        self.cluster = config.redis_cluster
        self._client: RedisClient | None = None
        self._client_lock = threading.Lock()
        self._release_script: Any = None

    def describe(self) -> str:
        """Human-readable target without credentials."""
        if self.cluster:
            return f"redis-cluster ({len(self.config.cluster_nodes) or 1} seed node(s))"
        return "redis"

    @property
    def client(self) -> RedisClient:
        """The redis-py client, created (and for a cluster, topology discovered) on first use."""
        client = self._client
        if client is None:
            with self._client_lock:
                if self._client is None:
                    built: Any = _build_client(self.config)
                    self._release_script = built.register_script(_RELEASE_LOCK)
                    self._client = built
                client = self._client
        return client

    def reset(self) -> None:
        """Drop the client and its connections; the next call reconnects (and re-discovers a cluster)."""
        with self._client_lock:
            client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(*REDIS_ERRORS):
                client.close()

    def ping(self) -> bool:
        """True when the server (every cluster primary) answers."""
        return bool(self.client.ping())

    def get(self, key: str) -> bytes | None:
        """Stored bytes of ``key`` or ``None``."""
        value: Any = self.client.get(key)
        return value

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Stored bytes of ``keys`` in order (one round trip per node)."""
        if not keys:
            return []
        client = self.client
        if isinstance(client, RedisCluster):
            values: Any = client.mget_nonatomic(list(keys))
        else:
            values = client.mget(list(keys))
        return list(values)

    def set_many(
        self, items: Mapping[str, bytes], ttl_ms: int | None, tag_keys: Iterable[str] = (), tag_ttl_ms: int = 0
    ) -> None:
        """``SET`` each item with ``PX ttl_ms`` and add its key to every tag set, in one pipeline."""
        if not items:
            return
        tag_keys = tuple(tag_keys)
        pipe = self.client.pipeline(transaction=False)
        for key, value in items.items():
            pipe.set(key, value, px=ttl_ms)
        for tag_key in tag_keys:
            pipe.sadd(tag_key, *items.keys())
            if tag_ttl_ms > 0:  # a tag set lives as long as its longest-lived member
                pipe.pexpire(tag_key, tag_ttl_ms, nx=True)
                pipe.pexpire(tag_key, tag_ttl_ms, gt=True)
        pipe.execute()

    def delete(self, keys: Sequence[str]) -> int:
        """Delete ``keys`` (across slots on a cluster); returns how many existed."""
        if not keys:
            return 0
        return int(self.client.delete(*keys))

    def invalidate_tag(self, tag_key: str) -> list[str]:
        """Delete every key listed in the tag set ``tag_key`` and the set itself; returns the deleted keys."""
        members = [m.decode() if isinstance(m, bytes) else str(m) for m in self.client.smembers(tag_key)]
        self.delete([*members, tag_key])
        return members

    def acquire_lock(self, lock_key: str, token: str, ttl_ms: int) -> bool:
        """``SET lock_key token NX PX ttl_ms``: True when this caller now holds the lock."""
        return bool(self.client.set(lock_key, token, nx=True, px=ttl_ms))

    def release_lock(self, lock_key: str, token: str) -> None:
        """Delete ``lock_key`` only if it still holds ``token`` (atomic, Lua)."""
        self.client  # noqa: B018 - make sure the script is registered on a live client
        self._release_script(keys=[lock_key], args=[token])

    def publish(self, channel: str, message: bytes) -> None:
        """Publish ``message`` on ``channel`` (used for two-tier invalidation)."""
        self.client.publish(channel, message)

    def close(self) -> None:
        """Close connections."""
        self.reset()
