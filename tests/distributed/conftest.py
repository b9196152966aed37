"""Fixtures of the distributed tests: the cache tests' real redis-server / 6-node cluster, and helpers."""

from __future__ import annotations

from tests.cache.conftest import redis_cluster, redis_server

__all__ = ["redis_cluster", "redis_server"]
