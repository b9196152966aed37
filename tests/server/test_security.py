"""API keys (hashed, scoped, revocable), 401/403, and rate limits with Retry-After (memory and Redis)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.cache.servers import REDIS_SERVER, RedisProcess
from tests.conftest import BASE_MS
from tests.server.servers import local_client
from tunewatch.cli.keys_cmd import app as keys_app
from tunewatch.errors import ConfigError
from tunewatch.security import ApiKeyError, ApiKeyStore, RateLimiter
from tunewatch.server import LiveService, create_app
from tunewatch.server.settings import ServerSettings
from tunewatch.store.sqlite import connect


def test_keys_are_stored_only_as_hashes_and_can_be_revoked(tmp_path: Path) -> None:
    store = ApiKeyStore(connect(tmp_path / "k.db", check_same_thread=False))
    key, info = store.create("ingester", {"ingest"}, now_ms=1)
    raw = (tmp_path / "k.db").read_bytes() + (tmp_path / "k.db-wal").read_bytes()
    assert key.split("_", 2)[2].encode() not in raw
    assert store.verify(key) == info and info.allows("ingest") and not info.allows("read")
    assert store.verify(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    store.revoke(info.id, now_ms=2)
    assert store.verify(key) is None
    with pytest.raises(ApiKeyError, match="already revoked"):
        store.revoke(info.id, now_ms=3)
    with pytest.raises(ApiKeyError, match="unknown scope 'root'"):
        store.create("x", {"root"}, now_ms=1)


def test_keys_cli_create_list_revoke(tmp_path: Path) -> None:
    db = str(tmp_path / "tw.db")
    runner = CliRunner()
    created = runner.invoke(keys_app, ["create", "--scope", "ingest", "--scope", "read", "--name", "ci", "--db", db])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("tw_")
    key_id = key.split("_")[1]
    listed = runner.invoke(keys_app, ["list", "--db", db])
    assert key_id in listed.stdout and key not in listed.stdout
    assert runner.invoke(keys_app, ["revoke", key_id, "--db", db]).exit_code == 0
    bad = runner.invoke(keys_app, ["revoke", "nope", "--db", db])
    assert bad.exit_code == 2 and "no API key with id 'nope'" in bad.output
    store = ApiKeyStore(sqlite3.connect(db, isolation_level=None))
    assert store.verify(key) is None


def test_auth_401_403_and_scopes(tmp_path: Path) -> None:
    settings = ServerSettings(auth=True, db=tmp_path / "tw.db")
    service = LiveService(clock=lambda: BASE_MS / 1000, settings=settings)
    ingest_key, _ = service.keys.create("i", {"ingest"}, now_ms=0)
    admin_key, _ = service.keys.create("a", {"admin"}, now_ms=0)
    client = local_client(create_app(service))
    r = client.get("/api/v1/alerts")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert client.get("/api/v1/alerts", headers={"X-API-Key": "tw_x_y"}).status_code == 401
    r = client.get("/api/v1/alerts", headers={"Authorization": f"Bearer {ingest_key}"})
    assert r.status_code == 403 and "'read' scope" in r.json()["detail"]
    assert client.post("/api/v1/events", content=b"[]", headers={"X-API-Key": ingest_key}).status_code == 200
    assert client.get("/api/v1/alerts", headers={"X-API-Key": admin_key}).status_code == 200
    assert client.get("/healthz").status_code == 200 and client.get("/metrics").status_code == 401


def test_auth_without_a_database_is_refused_clearly() -> None:
    service = LiveService(settings=ServerSettings(auth=True), db=":memory:")
    with pytest.raises(ConfigError, match="TUNEWATCH_AUTH=1 needs a database"):
        create_app(service)


def test_rate_limit_per_address_gives_429_with_retry_after() -> None:
    settings = ServerSettings(rate_limit_per_address="3/minute")
    client = local_client(create_app(LiveService(clock=lambda: BASE_MS / 1000, settings=settings)))
    codes = [client.get("/api/v1/alerts").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    r = client.get("/api/v1/alerts")
    assert 1 <= int(r.headers["retry-after"]) <= 60 and "per address" in r.json()["detail"]


@pytest.fixture
def redis_url() -> Iterator[str]:
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    server = RedisProcess().start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.mark.integration
def test_rate_limits_are_shared_through_redis(redis_url: str) -> None:
    first = RateLimiter(per_key="2/minute", storage_url=redis_url)
    second = RateLimiter(per_key="2/minute", storage_url=redis_url)  # another worker process, same storage
    assert first.hit(key_id="k1", address=None) is None
    assert second.hit(key_id="k1", address=None) is None
    refused = first.hit(key_id="k1", address=None)
    assert refused is not None and refused.scope == "key" and 1 <= refused.retry_after_s <= 60
    assert second.hit(key_id="k2", address=None) is None
