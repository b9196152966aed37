"""/metrics carries per-market revenue: with API keys required it needs the `metrics` scope (issue 15)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import BASE_MS
from tests.server.servers import local_client
from tunewatch.server import LiveService, create_app
from tunewatch.server.settings import ServerSettings


def test_metrics_need_a_key_with_the_metrics_scope_when_auth_is_on(tmp_path: Path) -> None:
    service = LiveService(clock=lambda: BASE_MS / 1000, settings=ServerSettings(auth=True, db=tmp_path / "tw.db"))
    scraper, _ = service.keys.create("prometheus", {"metrics"}, now_ms=0)
    reader, _ = service.keys.create("console", {"read"}, now_ms=0)
    admin, _ = service.keys.create("ops", {"admin"}, now_ms=0)
    client = local_client(create_app(service))
    assert client.get("/metrics").status_code == 401
    refused = client.get("/metrics", headers={"X-API-Key": reader})
    assert refused.status_code == 403 and "'metrics' scope" in refused.json()["detail"]
    scraped = client.get("/metrics", headers={"Authorization": f"Bearer {scraper}"})
    assert scraped.status_code == 200 and b"tunewatch_events_received_total" in scraped.content
    assert client.get("/metrics", headers={"X-API-Key": admin}).status_code == 200
    # the scraper's key reads nothing else
    assert client.get("/api/v1/alerts", headers={"X-API-Key": scraper}).status_code == 403


def test_metrics_stay_open_when_configured_so_or_when_auth_is_off(tmp_path: Path) -> None:
    open_metrics = ServerSettings(auth=True, metrics_auth=False, db=tmp_path / "tw.db")
    client = local_client(create_app(LiveService(clock=lambda: BASE_MS / 1000, settings=open_metrics)))
    assert client.get("/metrics").status_code == 200
    assert client.get("/api/v1/alerts").status_code == 401
    no_auth = local_client(create_app(LiveService(clock=lambda: BASE_MS / 1000, db=":memory:")))
    assert no_auth.get("/metrics").status_code == 200
