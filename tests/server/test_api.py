"""The HTTP API over a live service: body formats and limits, per-request accounting, alerts, silences, series."""

from __future__ import annotations

import gzip
import json
import sys
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
import zstandard
from fastapi.testclient import TestClient

from tests.conftest import BASE_MS
from tests.server.rules import plays_seen_rules
from tests.server.servers import local_client
from tunewatch.alert.rules import parse_rules
from tunewatch.server import LiveService, create_app
from tunewatch.server.decode import decode_body
from tunewatch.server.settings import ServerSettings

Play = Callable[..., dict[str, Any]]
RULES = plays_seen_rules()


def make_client(**settings: Any) -> tuple[LiveService, TestClient]:
    service = LiveService(
        parse_rules(RULES), clock=lambda: BASE_MS / 1000 + 600, settings=ServerSettings(**settings), db=":memory:"
    )
    return service, local_client(create_app(service))


@pytest.fixture
def client() -> TestClient:
    return make_client()[1]


def _ndjson(events: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(e).encode() + b"\n" for e in events)


@pytest.mark.parametrize(
    ("content_type", "encoding", "encode"),
    [
        ("application/json", None, lambda ev: json.dumps(ev).encode()),
        ("application/x-ndjson", None, _ndjson),
        ("application/msgpack", None, lambda ev: msgpack.packb(ev)),
        ("application/json", "gzip", lambda ev: gzip.compress(json.dumps(ev).encode())),
        ("application/x-ndjson", "zstd", lambda ev: zstandard.ZstdCompressor().compress(_ndjson(ev))),
    ],
)
def test_every_body_format_and_encoding(
    client: TestClient, play: Play, content_type: str, encoding: str | None, encode: Callable[[Any], bytes]
) -> None:
    events = [play(i, BASE_MS + i) for i in range(10)] + [play(0, BASE_MS), {**play(50, BASE_MS), "tier": "gold"}]
    headers = {"content-type": content_type, **({"content-encoding": encoding} if encoding else {})}
    body = client.post("/api/v1/events", content=encode(events), headers=headers).json()
    assert (body["received"], body["accepted"], body["rejected"], body["duplicates"]) == (12, 10, 1, 1)
    (rejection,) = body["rejections"]
    position = "line" if "ndjson" in content_type else "index"
    assert rejection[position] == (12 if position == "line" else 11)
    assert rejection["event_id"] == "e50" and rejection["reasons"] == ["tier: not_in_enum"]


def test_ndjson_line_numbers_count_blank_lines(client: TestClient, play: Play) -> None:
    body = b"\n" + json.dumps(play(1, BASE_MS)).encode() + b"\n\n{oops\n"
    r = client.post("/api/v1/events", content=body, headers={"content-type": "application/x-ndjson"}).json()
    assert r["accepted"] == 1 and r["rejections"] == [{"line": 4, "event_id": None, "reasons": ["line: invalid_json"]}]


def test_requests_coalesced_in_one_step_keep_their_own_accounting(play: Play) -> None:
    service, _ = make_client()
    a = decode_body(json.dumps([play(1, BASE_MS), play(2, BASE_MS), {"bad": True}]).encode(), "application/json")
    b = decode_body(_ndjson([play(2, BASE_MS), play(3, BASE_MS), play(3, BASE_MS)]), "application/x-ndjson")
    c = decode_body(msgpack.packb([play(4, BASE_MS)]), "application/msgpack")
    ra, rb, rc = service.ingest_payloads([a, b, c])
    assert (ra.received, ra.accepted, ra.rejected, ra.duplicates) == (3, 2, 1, 0)
    assert ra.rejections[0]["index"] == 2
    assert (rb.received, rb.accepted, rb.rejected, rb.duplicates) == (3, 1, 0, 2)  # e2 seen in a, e3 twice
    assert (rc.received, rc.accepted) == (1, 1)
    assert service.status()["accepted"] == 4


@pytest.mark.parametrize(
    ("body", "headers", "status", "message"),
    [
        (b"", {}, 400, "empty body"),
        (b"[1, 2", {"content-type": "application/json"}, 400, "not valid JSON"),
        (b"x" * 2048, {}, 413, "larger than the limit of 1024"),
        (b"<a/>", {"content-type": "application/xml"}, 415, "unsupported Content-Type"),
        (b"abc", {"content-encoding": "br"}, 415, "unsupported Content-Encoding"),
        (b"not gzip", {"content-encoding": "gzip"}, 400, "not valid gzip"),
        (gzip.compress(b"[" + b" " * 5000 + b"]"), {"content-encoding": "gzip"}, 413, "decompressed body"),
        (b"\xc1", {"content-type": "application/msgpack"}, 400, "not valid msgpack"),
    ],
)
def test_unusable_bodies_get_clear_errors(body: bytes, headers: dict[str, str], status: int, message: str) -> None:
    _, client = make_client(max_body_bytes=1024, max_decoded_bytes=4096)
    r = client.post("/api/v1/events", content=body, headers=headers)
    assert r.status_code == status and message in r.json()["detail"]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "reason"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "application/json", 400, "not valid JSON"),
        (b'{"a":' * 5000 + b"1" + b"}" * 5000 + b"\n", "application/x-ndjson", 200, "line: too_deep"),
        (b'[{"event_id": "\xff"}]', "application/json", 400, "not valid UTF-8 JSON"),
        (b'{"event_id": "\xff"}\n', "application/x-ndjson", 200, "event_id: invalid_utf8"),
        (msgpack.packb([{"event_id": msgpack.ExtType(5, b"ab")}]), "application/msgpack", 200, "event_id: bad_type"),
        (b"\x91" * 100_000 + b"\x00", "application/msgpack", 400, "not valid msgpack: StackError"),
        (b"\x91\x81\x91\x00\x00", "application/msgpack", 400, "not valid msgpack"),
        (b"null", "application/json", 200, "line: not_object"),
        (b'{"event_id":"' + b"x" * 200_000 + b'"}\n', "application/x-ndjson", 200, "line: too_long"),
    ],
)
def test_hostile_bodies_are_rejected_with_reasons_never_a_crash(
    client: TestClient, body: bytes, content_type: str, status: int, reason: str
) -> None:
    r = client.post("/api/v1/events", content=body, headers={"content-type": content_type})
    assert r.status_code == status
    if status == 200:
        assert r.json()["rejected"] == 1 and reason in r.json()["rejections"][0]["reasons"]
    else:
        assert reason in r.json()["detail"]


def test_alerts_series_and_quarantine(client: TestClient, play: Play) -> None:
    client.post("/api/v1/events", content=json.dumps([play(i, BASE_MS + i * 1000) for i in range(300)]))
    client.post("/api/v1/events", content=b"{nope\n", headers={"content-type": "application/x-ndjson"})
    active = client.get("/api/v1/alerts").json()
    assert {a["labels"].get("market", "-") for a in active} == {"-", "BR"}
    history = client.get("/api/v1/alerts", params={"state": "history"}).json()
    assert len(history) == len(active) and all(a["status"] == "firing" for a in history)
    catalog = client.get("/api/v1/series").json()
    assert {"metric": "plays", "dims": {"market": "BR"}} in catalog
    series = client.get("/api/v1/series/plays", params={"market": "BR"}).json()
    values = [p["value"] for p in series["points"]]
    assert values and set(values) == {60.0}  # 60 plays per closed minute
    assert all(set(p) == {"window_start", "value", "expected", "lower", "upper", "score"} for p in series["points"])
    assert series["alerts"][0]["alertname"] == "PlaysSeen" and series["alerts"][0]["at"] == BASE_MS
    quarantine = client.get("/api/v1/quarantine").json()
    assert quarantine["total"] == 1 and quarantine["events"][0]["reasons"] == ["line: invalid_json"]
    assert quarantine["events"][0]["raw"] == "{nope"
    assert (quarantine["events"][0]["request"], quarantine["events"][0]["line"]) == (2, 1)  # second request, line 1
    # personal fields are masked as the CLI masks them; reveal=true shows them (and is audited)
    client.post("/api/v1/events", content=b'{"event_id":"e9","user_id":"alice","market":"XX"}\n',
                headers={"content-type": "application/x-ndjson"})  # fmt: skip
    newest = client.get("/api/v1/quarantine", params={"limit": 1}).json()["events"][0]
    assert "alice" not in newest["raw"] and '"user_id":"‹redacted›"' in newest["raw"]
    revealed = client.get("/api/v1/quarantine", params={"limit": 1, "reveal": "true"}).json()["events"][0]
    assert '"user_id":"alice"' in revealed["raw"]


def test_silences_create_list_expire_and_mute(client: TestClient, play: Play) -> None:
    client.post("/api/v1/events", content=json.dumps([play(i, BASE_MS + i * 1000) for i in range(300)]))
    r = client.post("/api/v1/silences", json={"matchers": ["market=BR"], "comment": "cdn work", "duration": "2h"})
    assert r.status_code == 201 and r.json()["state"] == "active"
    sid = r.json()["id"]
    muted = {a["labels"].get("market"): a["silencedBy"] for a in client.get("/api/v1/alerts").json()}
    assert muted == {"BR": [sid], None: []}
    assert [s["id"] for s in client.get("/api/v1/silences").json()] == [sid]
    assert client.delete(f"/api/v1/silences/{sid}").json()["state"] == "expired"
    assert client.delete(f"/api/v1/silences/{sid}").status_code == 409
    assert client.delete("/api/v1/silences/ffff").status_code == 404


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"matchers": ["market"], "comment": "x"}, "bad matcher"),
        ({"matchers": ["market=~.*"], "comment": "x"}, "silence everything"),
        ({"matchers": ["market=BR"], "comment": "x", "duration": "soon"}, "duration"),
        ({"matchers": ["market=BR"], "comment": "x", "duration": "1h", "ends_at": "2030-01-01T00:00:00Z"}, "not both"),
    ],
)
def test_bad_silences_are_refused_with_the_reason(client: TestClient, body: dict[str, Any], message: str) -> None:
    r = client.post("/api/v1/silences", json=body)
    assert r.status_code == 400 and message in r.json()["detail"]


def test_a_rules_reload_keeps_the_entity_prior_of_new_tracks_and_artists() -> None:
    """The rebuilt detection stage starts entities new to the heavy hitters from their rate before, as at start."""
    service, client = make_client()
    assert client.post("/api/v1/rules/reload").json()["status"] == "reloaded"
    assert service.pipeline.detection.entity_prior == service.pipeline.processor.entity_prior


def test_rules_list_reload_health_and_openapi(client: TestClient) -> None:
    assert [r["alert"] for r in client.get("/api/v1/rules").json()] == ["PlaysSeen"]
    assert client.post("/api/v1/rules/reload").json()["status"] == "reloaded"  # the built-in pack (no file)
    assert len(client.get("/api/v1/rules").json()) > 1
    ready = client.get("/readyz")
    assert ready.status_code == 200 and all(ready.json()["checks"].values())
    assert ready.json()["checks"]["rate_limit_storage"] == "memory"  # no shared storage configured
    spec = client.get("/openapi.json").json()
    assert {"/api/v1/events", "/api/v1/silences", "/api/v1/series/{metric}", "/readyz"} <= set(spec["paths"])
    assert "application/msgpack" in spec["paths"]["/api/v1/events"]["post"]["requestBody"]["content"]
    assert client.get("/docs").status_code == 200
    page = client.get("/")
    assert "tunewatch console" in page.text and "script-src 'self'" in page.headers["content-security-policy"]


def test_series_queries_are_served_from_the_cache_until_new_detections_arrive() -> None:
    """The service caches query results (issue 6): the second identical query is a cache hit, new data a miss."""

    from tunewatch.server import LiveService, create_app
    from tunewatch.simulate import SimulationConfig, Simulator

    service = LiveService()
    client = local_client(create_app(service))
    sim = Simulator(SimulationConfig(minutes=8, events_per_minute=300, seed=4, incidents=False))
    for block in sim.blocks(4):
        assert (
            client.post(
                "/api/v1/events", content=block.write_ndjson(), headers={"Content-Type": "application/x-ndjson"}
            ).status_code
            == 200
        )
    first = client.get("/api/v1/series/plays", params={"market": "US"}).json()
    hits_before = service.cache.stats()["hits"]
    second = client.get("/api/v1/series/plays", params={"market": "US"}).json()
    assert second == first
    assert service.cache.stats()["hits"] == hits_before + 1
    assert service.cache.stats()["sets"] > 0  # metric windows are cached too
    assert "tunewatch_cache_hits" in client.get("/metrics").text


def test_the_gil_switch_interval_is_shortened_while_serving_and_restored_after() -> None:
    before = sys.getswitchinterval()
    _, client = make_client(gil_switch_interval_s=0.0007)
    with client:  # runs the lifespan
        assert sys.getswitchinterval() == pytest.approx(0.0007)
        assert client.get("/healthz").status_code == 200
    assert sys.getswitchinterval() == pytest.approx(before)
