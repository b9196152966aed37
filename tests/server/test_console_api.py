"""The console's queries (alert-history search, series search, silence preview) and the offline docs pages,
over a real service and its stores, called in-process as a loopback client would."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BASE_MS
from tests.server.rules import plays_seen_rules
from tests.server.servers import local_client
from tunewatch.alert.model import Alert
from tunewatch.alert.rules import parse_rules
from tunewatch.server import LiveService, create_app
from tunewatch.server.routes.console import axis_unit
from tunewatch.server.settings import ServerSettings

MIN = 60_000
SKIPS_SEEN = """
      - alert: SkipsSeen
        kind: threshold
        metric: skip_rate
        op: ">"
        value: -1
        dimensions: [global]
        for: 0s
        annotations: {summary: "skips at {{ $value }}"}
"""


def console_rules(dimensions: str, summary: str = "plays at {{ $value }}") -> str:
    """The shared ``PlaysSeen`` rule on ``dimensions`` plus ``SkipsSeen`` on the global skip rate (a share)."""
    return plays_seen_rules(dimensions=dimensions, summary=summary) + SKIPS_SEEN.lstrip("\n")


def _alert(name: str, sev: str, metric: str, status: str, start: int, end: int | None = None, **dims: Any) -> Alert:
    extra = dims.pop("extra", {})
    labels = {"alertname": name, "severity": sev, "metric": metric, **dims}
    return Alert(labels, {"summary": f"{name} on {dims or 'global'}"}, status, start, end, extra=extra)  # type: ignore[arg-type]


#: an incident on platform=android that also took market=BR (the shape alert/incidents.py gives ``also_affected``)
INCIDENT = _alert(
    "StartupSlow", "critical", "startup_ms_p95", "firing", BASE_MS + 2 * MIN, platform="android",
    extra={"also_affected": [{"alertname": "StartupSlow", "metric": "startup_ms_p95", "dims": {"market": "BR"},
                              "share_explained": 0.82}]},
)  # fmt: skip
LOG = [
    _alert("SkipSpike", "warning", "skip_rate", "firing", BASE_MS + 1 * MIN, market="DE"),
    INCIDENT,
    _alert("SkipSpike", "warning", "skip_rate", "resolved", BASE_MS + 1 * MIN, BASE_MS + 4 * MIN, market="DE"),
    _alert("PlaysDrop", "critical", "plays", "firing", BASE_MS + 6 * MIN, market="US", cdn="edge-2"),
]


@pytest.fixture
def seeded(tmp_path: Path) -> tuple[LiveService, Any]:
    service = LiveService(clock=lambda: BASE_MS / 1000 + 600, db=tmp_path / "tw.db")
    for i, a in enumerate(LOG):
        service.alert_log.record([a], BASE_MS + i * MIN)
    return service, local_client(create_app(service))


def _names(answer: dict[str, Any]) -> list[tuple[str, str]]:
    return [(a["labels"]["alertname"], a["status"]) for a in answer["alerts"]]


def test_history_search_filters_each_narrow_the_log(seeded: tuple[LiveService, Any]) -> None:
    _, client = seeded

    def search(query: str) -> dict[str, Any]:
        r = client.get("/api/v1/console/alerts" + query)
        assert r.status_code == 200, r.text
        return r.json()

    every = search("")
    assert every["now"] == BASE_MS + 600_000 and every["total"] == every["scanned"] == 4
    # newest change time first: PlaysDrop (6 min), SkipSpike resolved (4 min), StartupSlow (2), SkipSpike (1)
    assert _names(every) == [("PlaysDrop", "firing"), ("SkipSpike", "resolved"), ("StartupSlow", "firing"),
                             ("SkipSpike", "firing")]  # fmt: skip
    assert [a["at"] - BASE_MS for a in every["alerts"]] == [6 * MIN, 4 * MIN, 2 * MIN, MIN]
    assert every["facets"]["severity"] == ["critical", "warning"]
    assert every["facets"]["metric"] == ["plays", "skip_rate", "startup_ms_p95"]
    assert every["facets"]["slice"]["market"] == ["BR", "DE", "US"]  # BR: a slice the incident also affected

    assert _names(search("?state=resolved")) == [("SkipSpike", "resolved")]
    assert _names(search("?severity=critical")) == [("PlaysDrop", "firing"), ("StartupSlow", "firing")]
    assert _names(search("?metric=skip_rate&state=firing")) == [("SkipSpike", "firing")]
    assert _names(search("?alertname=StartupSlow&alertname=PlaysDrop")) == [("PlaysDrop", "firing"),
                                                                             ("StartupSlow", "firing")]  # fmt: skip
    assert _names(search("?slice=market=US&slice=cdn=edge-2")) == [("PlaysDrop", "firing")]
    assert _names(search("?slice=market=US&slice=cdn=edge-1")) == []
    # the incident is found by a slice it also affected, with that slice in its explanation
    found = search("?slice=market=BR")
    assert _names(found) == [("StartupSlow", "firing")]
    assert found["alerts"][0]["explanation"]["also_affected"][0]["dims"] == {"market": "BR"}
    ranged = search(f"?since={BASE_MS + 2 * MIN}&until={BASE_MS + 4 * MIN}")
    assert _names(ranged) == [("SkipSpike", "resolved"), ("StartupSlow", "firing")]
    # free text: every word, any case, in names, label values or annotations
    assert _names(search("?q=EDGE-2")) == [("PlaysDrop", "firing")]
    assert _names(search("?q=skipspike+de")) == [("SkipSpike", "resolved"), ("SkipSpike", "firing")]
    assert _names(search("?q=skipspike+US")) == []
    limited = search("?limit=1")
    assert limited["total"] == 4 and _names(limited) == [("PlaysDrop", "firing")]


def test_history_search_sees_each_new_change(seeded: tuple[LiveService, Any]) -> None:
    """The parsed log is kept between requests: a change recorded since is found, with its facets."""
    service, client = seeded
    assert client.get("/api/v1/console/alerts?q=tier").json()["total"] == 0
    later = _alert("TierDrop", "info", "plays", "firing", BASE_MS + 8 * MIN, tier="family")
    service.alert_log.record([later], BASE_MS + 8 * MIN)
    answer = client.get("/api/v1/console/alerts?q=tier").json()
    assert _names(answer) == [("TierDrop", "firing")] and answer["scanned"] == len(LOG) + 1
    assert answer["facets"]["severity"] == ["critical", "info", "warning"]
    assert answer["facets"]["slice"]["tier"] == ["family"]


def test_history_search_reads_back_alerts_of_any_year(seeded: tuple[LiveService, Any]) -> None:
    """An alert posted with a year below 1000 (the fuzz test's Alertmanager POST) is stored and read back."""
    service, client = seeded
    ancient = -39_982_723_200_000  # 0703-01-01T00:00Z
    service.alert_log.record([_alert("Old", "info", "plays", "firing", ancient)], BASE_MS)
    r = client.get("/api/v1/console/alerts?alertname=Old")
    assert r.status_code == 200 and r.json()["alerts"][0]["startsAt"].startswith("0703-")
    assert r.json()["alerts"][0]["at"] == ancient


def test_history_search_refuses_bad_filters_naming_them(seeded: tuple[LiveService, Any]) -> None:
    _, client = seeded
    r = client.get("/api/v1/console/alerts?slice=colour=red")
    assert r.status_code == 400 and r.json()["detail"].startswith("slice: expected field=value")
    r = client.get("/api/v1/console/alerts?slice=market=BR&slice=market=DE")
    assert r.status_code == 400 and "market given twice" in r.json()["detail"]
    for query in ("state=burning", "limit=0", "since=-1", "q=" + "x" * 201):
        r = client.get("/api/v1/console/alerts?" + query)
        assert r.status_code == 422, query
        assert r.json()["detail"][0]["loc"][1] == query.split("=")[0]


def test_silence_preview_lists_exactly_the_active_alerts_a_silence_would_mute(
    seeded: tuple[LiveService, Any],
) -> None:
    service, client = seeded
    active = {a.fingerprint: a for a in service.active_alerts()}
    assert {a.name for a in active.values()} == {"StartupSlow", "PlaysDrop"}  # SkipSpike has resolved

    def preview(*matchers: str) -> dict[str, Any]:
        r = client.get("/api/v1/console/silence-preview", params=[("matcher", m) for m in matchers])
        assert r.status_code == 200, r.text
        return r.json()

    p = preview('severity="critical"')
    assert p["active"] == 2 and {a["fingerprint"] for a in p["alerts"]} == set(active)
    p = preview("severity=critical", 'market=~"U.|XX"')
    assert [a["labels"]["alertname"] for a in p["alerts"]] == ["PlaysDrop"] and p["matchers"][1] == 'market=~"U.|XX"'
    assert preview("market=DE")["alerts"] == []  # only the resolved SkipSpike was on DE
    assert preview('{alertname="StartupSlow", platform="android"}')["alerts"][0]["silencedBy"] == []
    assert service.list_silences() == []  # a preview creates nothing

    # once such a silence exists, the preview says so; the same matchers are accepted by POST /api/v1/silences
    made = client.post("/api/v1/silences", json={"matchers": ["platform=android"], "comment": "x", "duration": "1h"})
    assert made.status_code == 201
    assert preview("platform=android")["alerts"][0]["silencedBy"] == [made.json()["id"]]

    for bad in ("market", 'market=~"("', "1x=2"):
        r = client.get("/api/v1/console/silence-preview", params={"matcher": bad})
        assert r.status_code == 400 and r.json()["detail"].startswith("bad matcher"), bad
    assert client.get("/api/v1/console/silence-preview").status_code == 422


def test_series_search_by_metric_slice_and_words_with_axis_units(
    tmp_path: Path, play: Callable[..., dict[str, Any]]
) -> None:
    service = LiveService(
        parse_rules(console_rules("global, market")), clock=lambda: BASE_MS / 1000 + 600, db=tmp_path / "tw.db"
    )
    client = local_client(create_app(service))
    events = [play(i, BASE_MS + i * 1000, market=["BR", "DE"][i % 2], skipped=i % 4 == 0) for i in range(200)]
    assert client.post("/api/v1/events", content=json.dumps(events)).json()["accepted"] == 200

    def search(query: str) -> dict[str, Any]:
        r = client.get("/api/v1/console/series" + query)
        assert r.status_code == 200, r.text
        return r.json()

    every = search("")
    names = [s["name"] for s in every["series"]]
    assert names == ["plays (global)", "plays {market=BR}", "plays {market=DE}", "skip_rate (global)"]
    assert every["metrics"]["skip_rate"]["unit"] == {"label": "skipped plays / plays (%)", "suffix": "%", "scale": 100}
    assert every["metrics"]["plays"]["unit"]["suffix"] == "/min"
    assert [s["name"] for s in search("?metric=plays&slice=market=DE")["series"]] == ["plays {market=DE}"]
    assert [s["name"] for s in search("?slice=global")["series"]] == ["plays (global)", "skip_rate (global)"]
    assert [s["dims"] for s in search("?q=PLAYS+br")["series"]] == [{"market": "BR"}]
    assert search("?q=skip&metric=plays")["total"] == 0
    assert search("?limit=1")["total"] == 4 and len(search("?limit=1")["series"]) == 1
    assert client.get("/api/v1/console/series?slice=BR").status_code == 400
    # each result is a series the points endpoint knows
    first = search("?q=DE")["series"][0]
    assert client.get(f"/api/v1/series/{first['metric']}", params=first["dims"]).json()["points"]


def test_axis_units_follow_the_metric_catalogue(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (axis_unit("failure_rate").suffix, axis_unit("failure_rate").scale) == ("%", 100.0)
    assert axis_unit("startup_ms_p95").suffix == " ms" and "95th percentile" in axis_unit("startup_ms_p95").label
    monkeypatch.setenv("TUNEWATCH_CURRENCY", "EUR")
    revenue = axis_unit("est_revenue_micros")
    assert (revenue.scale, revenue.suffix, revenue.label) == (1e-6, " EUR", "revenue per minute (EUR)")
    assert axis_unit("ad_revenue_micros", "BRL").suffix == " BRL"
    assert axis_unit("streams_per_listener").suffix == ""  # a ratio that is not a share
    assert axis_unit("unique_listeners").suffix == "/min"
    assert axis_unit("freshness_lag_s").suffix == " s"
    assert axis_unit("no_such_metric").label == "value"


def test_docs_pages_load_only_local_assets(seeded: tuple[LiveService, Any]) -> None:
    _, client = seeded
    for page, bundle in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")):
        r = client.get(page)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        urls = re.findall(r'(?:src|href)="([^"]+)"', r.text)
        assert urls and all(u.startswith("/") and not u.startswith("//") for u in urls), urls
        assert f"/docs/assets/{bundle}" in urls
        csp = r.headers["content-security-policy"]
        assert "script-src 'self';" in csp and "connect-src 'self'" in csp and "http" not in csp
        for url in urls:
            asset = client.get(url)
            assert asset.status_code == 200 and len(asset.content) > 100, url
    assert client.get("/docs/assets/../../app.py").status_code == 404
    assert client.get("/docs/assets/LICENSE").status_code == 404
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/v1/console/alerts", "/api/v1/console/series", "/api/v1/console/silence-preview"} <= set(paths)
    assert "/docs" not in paths


def test_console_searches_need_the_read_scope_and_the_silence_preview_admin(tmp_path: Path) -> None:
    service = LiveService(clock=lambda: BASE_MS / 1000, settings=ServerSettings(auth=True, db=tmp_path / "tw.db"))
    ingest_key, _ = service.keys.create("i", {"ingest"}, now_ms=0)
    read_key, _ = service.keys.create("r", {"read"}, now_ms=0)
    admin_key, _ = service.keys.create("a", {"admin"}, now_ms=0)
    client = local_client(create_app(service))
    for path in ("/api/v1/console/alerts", "/api/v1/console/series", "/api/v1/console/silence-preview?matcher=a=b"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers={"X-API-Key": ingest_key}).status_code == 403
        read = client.get(path, headers={"X-API-Key": read_key}).status_code
        assert read == (403 if "silence" in path else 200)
        assert client.get(path, headers={"X-API-Key": admin_key}).status_code == 200
    assert client.get("/docs").status_code == 200  # like /openapi.json, the docs need no key
