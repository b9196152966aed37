"""schemathesis against the published OpenAPI schema of a real service: no request it generates, valid or not,
and no hostile parameter value gets a 5xx answer."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

from tests.conftest import BASE_MS
from tests.server.live import serve
from tests.server.servers import local_client
from tunewatch.server import LiveService, create_app

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed (pip install schemathesis)")
GenerationMode = schemathesis.GenerationMode


#: values a hostile client puts in any query or path parameter
HOSTILE_VALUES = (
    "99999999999999999999", "-99999999999999", "1e400", "-1e400", "NaN", "Infinity", "-Infinity", "",
    "0x10", "1" * 5000, "\u0000", "%00", "%ff%fe", "é" * 300, "../../etc/passwd", "[]", "{}", "true",
)  # fmt: skip


@pytest.mark.slow
@pytest.mark.integration
def test_no_generated_or_hostile_request_gets_a_server_error(tmp_path: Path) -> None:
    """Positive and negative (schema-violating) cases, then every hostile value in every parameter, against a
    real ``tunewatch serve``: never a 5xx, and the service still answers afterwards."""
    env = {"TUNEWATCH_RATE_LIMIT_PER_ADDRESS": "", "TUNEWATCH_RATE_LIMIT_PER_KEY": "", "TUNEWATCH_MAX_SILENCE": "30d"}
    with serve(tmp_path, env) as served:
        schema = schemathesis.openapi.from_url(served.base + "/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 15
        # the profiler waits for as long as asked (up to a minute): tested on its own below
        operations = [op for op in operations if op.path != "/api/v1/admin/profile"]
        failures: list[str] = []

        def record(case: Any) -> None:
            response = case.call(base_url=served.base, timeout=30)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:200]}")

        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

                @given(operation.as_strategy(generation_mode=mode))
                @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), database=None)
                def check(case: Any) -> None:
                    record(case)

                with contextlib.suppress(Unsatisfiable):  # nothing to violate (no parameters, no body)
                    check()
            plain = {param.name: "plays" for param in operation.path_parameters}
            for param in operation.query:
                for value in HOSTILE_VALUES:
                    record(operation.Case(path_parameters=plain, query={param.name: value}))
            for param in operation.path_parameters:
                for value in HOSTILE_VALUES:
                    if value and "/" not in value:
                        record(operation.Case(path_parameters={**plain, param.name: value}))
        assert failures == []
        assert httpx.get(served.base + "/healthz").status_code == 200


def test_admin_profile_endpoint(play: Any) -> None:
    import json


    pytest.importorskip("pyinstrument", reason="pyinstrument is not installed")
    service = LiveService(clock=lambda: BASE_MS / 1000 + 600, db=":memory:")
    client = local_client(create_app(service))
    service.profiler.arm(30)
    client.post("/api/v1/events", content=json.dumps([play(i, BASE_MS + i) for i in range(50)]))
    service.settle()  # the stream advances with the step on its own thread, after the answer
    text = service.profiler.collect("text")
    # one section validates the step (its answers wait for it), one advances the stream with it
    assert text.startswith("tunewatch profile: 2 sections") and "ingest" in text
    r = client.get("/api/v1/admin/profile", params={"seconds": 0.05, "format": "text"})
    assert r.status_code == 200 and r.text.startswith("tunewatch profile")
    assert client.get("/api/v1/admin/profile", params={"seconds": 0}).status_code == 422
