"""Alertmanager's API v2 in process: inhibition and routing from the service's notifier, filters, expiry of
posted alerts (``endsAt``, else 5 minutes after the last post) on the service's clock, silence updates."""

from __future__ import annotations

from pathlib import Path

from tests.server.servers import local_client
from tunewatch.alert.rules import parse_rules
from tunewatch.server.runtime import build_runtime
from tunewatch.server.settings import ServerSettings

NOTIFY = """
route:
  receiver: team
  group_by: [alertname]
  group_wait: 1h
  routes: [{receiver: pager, matchers: ['severity="critical"']}]
receivers:
  - {name: team, webhook_configs: [{url: "http://127.0.0.1:9/team"}]}
  - {name: pager, webhook_configs: [{url: "http://127.0.0.1:9/pager"}]}
inhibit_rules:
  - {source_matchers: ['severity="critical"'], target_matchers: ['severity="warning"'], equal: [market]}
"""
NOW = 1_800_000_000.0  # the service's clock (epoch seconds)


def _alert(name: str, severity: str, market: str, **times: str) -> dict[str, object]:
    return {"labels": {"alertname": name, "severity": severity, "market": market}, "annotations": {}, **times}


def test_inhibition_routing_filters_and_expiry(tmp_path: Path) -> None:
    (config := tmp_path / "notify.yaml").write_text(NOTIFY)
    clock = [NOW]
    runtime = build_runtime(ServerSettings(db=tmp_path / "tw.db", notify_config=config),
                            rules=parse_rules("groups: []"), clock=lambda: clock[0])  # fmt: skip
    client = local_client(runtime.app())
    posted = [_alert("Outage", "critical", "BR"), _alert("Slow", "warning", "BR"), _alert("Slow", "warning", "SE")]
    assert client.post("/api/v2/alerts", json=posted).status_code == 200
    alerts = {(a["labels"]["alertname"], a["labels"]["market"]): a for a in client.get("/api/v2/alerts").json()}
    outage, slow_br, slow_se = alerts[("Outage", "BR")], alerts[("Slow", "BR")], alerts[("Slow", "SE")]
    assert slow_br["status"] == {"state": "suppressed", "silencedBy": [], "inhibitedBy": [outage["fingerprint"]]}
    assert slow_se["status"]["state"] == "active" and outage["receivers"] == [{"name": "pager"}]
    assert slow_se["receivers"] == [{"name": "team"}]
    shown = client.get("/api/v2/alerts", params={"inhibited": "false", "filter": 'alertname="Slow"'}).json()
    assert [a["labels"]["market"] for a in shown] == ["SE"]
    assert [a["labels"]["market"] for a in client.get("/api/v2/alerts", params={"receiver": "pag.*"}).json()] == ["BR"]
    groups = {(g["receiver"]["name"], g["labels"]["alertname"]): len(g["alerts"])
              for g in client.get("/api/v2/alerts/groups").json()}  # fmt: skip
    assert groups == {("pager", "Outage"): 1, ("team", "Slow"): 2}
    assert client.get("/api/v2/alerts", params={"filter": "bad matcher"}).status_code == 400

    # a silence changed through v2: in place while its matchers stay, else replaced (a new id)
    body = {"matchers": [{"name": "market", "value": "SE", "isRegex": False, "isEqual": True}],
            "startsAt": "2027-01-15T08:00:00Z", "endsAt": "2027-01-15T10:00:00Z",
            "createdBy": "ops", "comment": "a"}  # fmt: skip
    sid = client.post("/api/v2/silences", json=body).json()["silenceID"]
    same = client.post("/api/v2/silences", json={**body, "id": sid, "endsAt": "2027-01-15T11:00:00Z"}).json()
    assert same == {"silenceID": sid}
    assert client.get(f"/api/v2/silence/{sid}").json()["endsAt"].startswith("2027-01-15T11")
    moved = {**body, "id": sid, "matchers": [{**body["matchers"][0], "value": "DE"}]}  # type: ignore[dict-item]
    new = client.post("/api/v2/silences", json=moved).json()["silenceID"]
    assert new != sid and client.get(f"/api/v2/silence/{sid}").json()["status"] == {"state": "expired"}
    assert client.post("/api/v2/silences", json={**body, "id": "nope"}).status_code == 404
    assert client.get("/api/v2/silence/nope").status_code == 404

    # a posted alert without endsAt stays active for 5 minutes after its last post; with endsAt, until then
    client.post("/api/v2/alerts", json=[_alert("Outage", "critical", "BR", endsAt="2027-01-15T08:30:00Z")])
    clock[0] += 4 * 60
    assert len(client.get("/api/v2/alerts").json()) == 3
    clock[0] += 2 * 60
    assert [a["labels"]["alertname"] for a in client.get("/api/v2/alerts").json()] == ["Outage"]
    clock[0] = 1_800_000_000 + 3600 * 24 * 365  # past its endsAt
    assert client.get("/api/v2/alerts").json() == []
    assert {a.status for a in runtime.alert_log.history()} == {"firing", "resolved"}
    runtime.close()
