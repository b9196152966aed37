"""Fixtures of the cache tests: real redis-server processes on free loopback ports (skipped if not installed)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.cache.servers import REDIS_CLI, REDIS_SERVER, RedisClusterProcesses, RedisProcess


@pytest.fixture
def redis_server() -> Iterator[RedisProcess]:
    """A fresh ``redis-server`` (no persistence) for one test."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    server = RedisProcess().start()
    yield server
    server.stop()
    shutil.rmtree(server.workdir, ignore_errors=True)


@pytest.fixture
def redis_cluster() -> Iterator[RedisClusterProcesses]:
    """A fresh Redis Cluster: 6 local processes, 3 masters + 3 replicas, 1 s node timeout."""
    if REDIS_SERVER is None or REDIS_CLI is None:
        pytest.skip("redis-server/redis-cli are not installed (apt-get install redis-server redis-tools)")
    cluster = RedisClusterProcesses()
    try:
        cluster.start()
    except Exception:
        cluster.stop()
        raise
    yield cluster
    cluster.stop()
