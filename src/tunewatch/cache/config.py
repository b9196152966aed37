"""Typed configuration of the cache, shaped like the seed's (``redis_cluster``, ``ttl_default``, ``compression``,
``serialization``), loadable from ``TUNEWATCH_CACHE_*`` environment variables.

>>> CacheConfig(redis_url=None).backend
'memory'
>>> CacheConfig(redis_cluster=True, cluster_nodes=["127.0.0.1:7000"]).backend
'redis-cluster'
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIB = 1024 * 1024


class CacheConfig(BaseSettings):
    """Cache settings; every field can be set with ``TUNEWATCH_CACHE_<FIELD>`` (lists as JSON).

    ``redis_url=None`` and ``redis_cluster=False`` (the default) give a memory-only cache that needs no server.

    >>> cfg = CacheConfig(redis_url="redis://127.0.0.1:6379/0", ttl_default=60)
    >>> cfg.backend, cfg.ttl_default
    ('redis', 60)
    """

    model_config = SettingsConfigDict(env_prefix="TUNEWATCH_CACHE_", extra="forbid", frozen=True)

    redis_cluster: bool = Field(default=False, description="use a Redis Cluster (cluster_nodes or redis_url as seed)")
    redis_url: str | None = Field(default=None, description="redis://host:port/db; None → memory only")
    cluster_nodes: list[str] = Field(default_factory=list, description="cluster seed nodes as host:port")
    ttl_default: int = Field(default=3600, gt=0, description="seconds an entry lives when set() gets no ttl")
    compression: bool = Field(default=True, description="zstd-compress values larger than compress_threshold")
    serialization: Literal["msgpack"] = "msgpack"
    memory_max_entries: int = Field(default=100_000, gt=0, description="bound of the memory tier, in entries")
    memory_max_bytes: int = Field(default=256 * MIB, gt=0, description="bound of the memory tier, in key+value bytes")
    namespace: str = Field(default="tw", min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    version: int = Field(default=1, ge=0, description="bumped on a schema change: old entries become unreachable")
    compress_threshold: int = Field(default=1024, ge=0, description="values of at least this many bytes are compressed")
    timeout_s: float = Field(default=0.25, gt=0, description="socket connect/read timeout towards Redis")
    two_tier: bool = Field(
        default=False, description="keep a memory tier in front of Redis (read-through, invalidated)"
    )
    two_tier_ttl: float = Field(default=30.0, gt=0, description="upper bound on how long the memory tier may be stale")
    negative_ttl: int = Field(default=60, gt=0, description="seconds a 'no value' answer of get_or_compute is cached")
    lock_ttl_ms: int = Field(default=30_000, gt=0, description="lifetime of the cross-process compute lock")
    lock_wait_s: float = Field(default=10.0, ge=0, description="how long get_or_compute waits for another computer")
    reconnect_backoff_s: float = Field(default=1.0, gt=0, description="first pause before retrying a failed Redis")
    reconnect_backoff_max_s: float = Field(default=30.0, gt=0, description="cap of the exponential reconnect pause")
    max_value_bytes: int = Field(default=256 * MIB, gt=0, description="largest decoded value accepted from the cache")

    @field_validator("cluster_nodes")
    @classmethod
    def _check_nodes(cls, nodes: list[str]) -> list[str]:
        for node in nodes:
            host, sep, port = node.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"cluster_nodes: {node!r} is not host:port")
        return nodes

    @model_validator(mode="after")
    def _check_cluster(self) -> CacheConfig:
        if self.redis_cluster and not (self.cluster_nodes or self.redis_url):
            raise ValueError("redis_cluster: needs cluster_nodes or redis_url to find the cluster")
        return self

    @property
    def backend(self) -> Literal["memory", "redis", "redis-cluster"]:
        """Which remote store this configuration selects."""
        if self.redis_cluster:
            return "redis-cluster"
        return "redis" if self.redis_url else "memory"
