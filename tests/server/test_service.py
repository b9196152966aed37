"""The HTTP service on embedded defaults: ingest (JSON array and NDJSON), alerts, metrics, health."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import BASE_MS
from tests.server.servers import local_client
from tunewatch.server import LiveService, create_app


@pytest.fixture
def client() -> TestClient:
    service = LiveService(clock=lambda: BASE_MS / 1000 + 3600)
    return local_client(create_app(service))


def test_ingest_json_array_reports_outcomes(client: TestClient, play: Callable[..., dict[str, Any]]) -> None:
    events = [play(i, BASE_MS + i * 1000) for i in range(20)]
    events.append(play(0, BASE_MS))  # duplicate id
    events.append({**play(99, BASE_MS), "market": "XX"})
    r = client.post("/api/v1/events", content=json.dumps(events))
    assert r.status_code == 200
    body = r.json()
    assert (body["received"], body["accepted"], body["duplicates"], body["rejected"]) == (22, 20, 1, 1)
    assert "market is not an upper-case ISO 3166-1 alpha-2 country code" in body["errors"][0]


def test_ingest_ndjson_with_a_bad_line(client: TestClient, play: Callable[..., dict[str, Any]]) -> None:
    body = "\n".join(json.dumps(play(i, BASE_MS + i)) for i in range(5)) + "\n{oops\n"
    r = client.post("/api/v1/events", content=body, headers={"content-type": "application/x-ndjson"})
    assert r.json()["accepted"] == 5 and r.json()["rejected"] == 1


@pytest.mark.parametrize(("body", "status"), [(b"", 400), (b"[1, 2", 400), (b'{"a": 1}', 200)])
def test_bad_bodies_get_clear_errors(client: TestClient, body: bytes, status: int) -> None:
    r = client.post("/api/v1/events", content=body)
    assert r.status_code == status
    if status == 200:
        assert r.json()["rejected"] == 1  # an object without fields: rejected with reasons, not lost


def test_metrics_health_and_alerts(client: TestClient, play: Callable[..., dict[str, Any]]) -> None:
    client.post("/api/v1/events", content=json.dumps([play(i, BASE_MS + i) for i in range(3)]))
    metrics = client.get("/metrics").text
    assert 'tunewatch_events_total{outcome="accepted"} 3.0' in metrics
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["received"] == 3
    assert client.get("/api/v1/alerts").json() == []
