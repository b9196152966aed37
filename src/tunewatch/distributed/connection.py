"""Redis client of distributed mode: a single server (``redis://`` URL) or a Redis Cluster (seed nodes)."""

from __future__ import annotations

from collections.abc import Sequence

import redis
from redis.cluster import ClusterNode, RedisCluster

RedisClient = redis.Redis | RedisCluster


def text_of(value: object) -> str:
    """A Redis reply item as text: bytes decoded as UTF-8 (clients here never set ``decode_responses``)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def connect(url: str | None = None, cluster_nodes: Sequence[str] = (), *, timeout_s: float = 5.0) -> RedisClient:
    """Open a client: ``RedisCluster`` when ``cluster_nodes`` (``host:port``) are given, else ``Redis`` on ``url``.

    ``timeout_s`` bounds socket reads; blocking stream reads must use a shorter block time.
    """
    if cluster_nodes:
        nodes = []
        for node in cluster_nodes:
            host, sep, port = node.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"cluster node: {node!r} is not host:port")
            nodes.append(ClusterNode(host, int(port)))
        return RedisCluster(
            startup_nodes=nodes, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, require_full_coverage=True
        )
    if not url:
        raise ValueError("redis: give a redis:// URL or cluster nodes")
    return redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
