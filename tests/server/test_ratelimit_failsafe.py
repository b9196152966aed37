"""Rate-limit storage that fails safe (issue 14), with a real redis-server and a real ``tunewatch serve``:
Redis killed or frozen (SIGSTOP) → in-memory limits, no 5xx, health checks answered at once, the fallback
logged and counted in /metrics; limits shared through Redis again once it is back."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cache.servers import REDIS_SERVER, RedisProcess
from tests.server.live import JSON, serve
from tunewatch.security import RateLimiter

pytestmark = pytest.mark.integration


@pytest.fixture
def redis_server() -> Iterator[RedisProcess]:
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    server = RedisProcess().start()
    try:
        yield server
    finally:
        server.stop()


def _timed(call: Callable[[], httpx.Response]) -> tuple[int, float]:
    t0 = time.perf_counter()
    r = call()
    return r.status_code, time.perf_counter() - t0


def test_frozen_or_dead_redis_never_fails_or_blocks_requests(
    tmp_path: Path, redis_server: RedisProcess, play: Callable[..., dict[str, Any]]
) -> None:
    url = redis_server.url
    env = {"TUNEWATCH_RATE_LIMIT_STORAGE": url, "TUNEWATCH_RATE_LIMIT_PER_ADDRESS": "1000/second"}
    with serve(tmp_path, env) as s:
        now = int(time.time() * 1000) - 60_000

        def ingest(i: int) -> httpx.Response:
            body = json.dumps([play(i, now, event_id=f"r{i}")])
            return httpx.post(s.base + "/api/v1/events", content=body, headers=JSON, timeout=10)

        assert ingest(0).status_code == 200
        assert httpx.get(s.base + "/readyz").json()["checks"]["rate_limit_storage"] == "ok"

        redis_server.send(signal.SIGSTOP)  # frozen: connections accepted, nothing answered
        try:
            results = [_timed(lambda i=i: ingest(i)) for i in range(1, 6)]
            health = [_timed(lambda: httpx.get(s.base + "/healthz", timeout=10)) for _ in range(3)]
            ready = httpx.get(s.base + "/readyz", timeout=10)
        finally:
            redis_server.send(signal.SIGCONT)
        assert [code for code, _ in results] == [200] * 5
        assert max(seconds for _, seconds in results) < 1.0  # one storage timeout at most, then memory
        assert [code for code, _ in health] == [200] * 3 and max(sec for _, sec in health) < 0.5
        assert ready.status_code == 200 and ready.json()["checks"]["rate_limit_storage"] == "fallback to memory"

        redis_server.stop()  # dead: connection refused
        codes = [ingest(i).status_code for i in range(10, 20)]
        assert codes == [200] * 10
        assert httpx.get(s.base + "/healthz").status_code == 200
        metrics = httpx.get(s.base + "/metrics").text
        line = next(x for x in metrics.splitlines() if x.startswith("tunewatch_rate_limit_storage_fallbacks_total"))
        assert float(line.split()[-1]) >= 10
        assert httpx.get(s.base + "/healthz").json()["accepted"] == 16


def test_memory_limits_hold_while_redis_is_down(redis_server: RedisProcess) -> None:
    url = redis_server.url
    limiter = RateLimiter(per_address="3/minute", storage_url=url, timeout_s=0.2, retry_s=60)
    assert limiter.hit(key_id=None, address="a") is None
    redis_server.stop()
    decisions = [limiter.hit(key_id=None, address="a") for _ in range(4)]
    assert decisions[:3] == [None, None, None] and decisions[3] is not None  # counted afresh in memory
    assert limiter.degraded and limiter.fallbacks == 4
