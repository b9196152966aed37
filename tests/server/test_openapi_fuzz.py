"""schemathesis against the published OpenAPI schema: no request it generates gets a 5xx answer."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from tests.conftest import BASE_MS
from tests.server.servers import local_client
from tunewatch.server import LiveService, create_app
from tunewatch.server.settings import ServerSettings

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed (pip install schemathesis)")


@pytest.mark.slow
def test_no_generated_request_gets_a_server_error() -> None:
    unlimited = ServerSettings(rate_limit_per_address="", rate_limit_per_key="")
    app = create_app(LiveService(clock=lambda: BASE_MS / 1000 + 600, settings=unlimited, db=":memory:"))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 13
    # the profiler waits for as long as asked (up to a minute): tested on its own below
    operations = [op for op in operations if op.path != "/api/v1/admin/profile"]

    for operation in operations:

        @given(operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: Any) -> None:
            response = case.call()
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:200]}")

        check()
    assert failures == []


def test_admin_profile_endpoint(play: Any) -> None:
    import json


    pytest.importorskip("pyinstrument", reason="pyinstrument is not installed")
    service = LiveService(clock=lambda: BASE_MS / 1000 + 600, db=":memory:")
    client = local_client(create_app(service))
    service.profiler.arm(30)
    client.post("/api/v1/events", content=json.dumps([play(i, BASE_MS + i) for i in range(50)]))
    text = service.profiler.collect("text")
    assert text.startswith("tunewatch profile: 1 sections") and "ingest" in text
    r = client.get("/api/v1/admin/profile", params={"seconds": 0.05, "format": "text"})
    assert r.status_code == 200 and r.text.startswith("tunewatch profile")
    assert client.get("/api/v1/admin/profile", params={"seconds": 0}).status_code == 422
