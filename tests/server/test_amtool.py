"""Alertmanager's API v2 on tunewatch, driven by the real ``amtool`` (Debian's /usr/bin/amtool) against a real
``tunewatch serve`` process on loopback, with API keys on (amtool sends its key from ``--http.config.file``).

A silence made with amtool mutes the service's alert for tunewatch's own API and CLI too (one silence store), and
an alert posted the way Prometheus posts it goes through tunewatch's routing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import make_play
from tests.notify.peers import HttpReceiver
from tests.server.live import clean_env, serve, tunewatch_cli
from tests.server.rules import plays_seen_rules

AMTOOL = shutil.which("amtool") or "/usr/bin/amtool"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.integration,
    pytest.mark.skipif(not Path(AMTOOL).exists(), reason="amtool not installed (apt install prometheus-alertmanager)"),
]

NOTIFY = """
route: {receiver: hook, group_by: [market], group_wait: 0s, group_interval: 1s, repeat_interval: 1h}
receivers:
  - name: hook
    webhook_configs: [{url: "URL/hook"}]
"""


@dataclass
class Service:
    url: str
    env: dict[str, str]
    admin_key: str
    read_key: str
    http_config: Path  # amtool's --http.config.file with the admin key

    def amtool(self, *args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
        cmd = [AMTOOL, f"--alertmanager.url={self.url}", f"--http.config.file={config or self.http_config}", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, headers={"Authorization": f"Bearer {self.admin_key}"}, timeout=10)


def _key(scope: str, env: dict[str, str]) -> str:
    made = tunewatch_cli("keys", "create", "--name", f"amtool-{scope}", "--scope", scope, env=env)
    assert made.returncode == 0, made.stderr
    return made.stdout.strip().splitlines()[-1].strip()


def _http_config(path: Path, key: str) -> Path:
    path.write_text(f"authorization:\n  type: Bearer\n  credentials: {key}\n", encoding="utf-8")
    return path


@pytest.fixture
def service(tmp_path: Path, http_receiver: HttpReceiver) -> Iterator[Service]:
    env = clean_env(TUNEWATCH_HOME=str(tmp_path / "home"))
    admin, read = _key("admin", env), _key("read", env)
    env["TUNEWATCH_AUTH"] = "1"
    rules = tmp_path / "rules.yaml"
    rules.write_text(plays_seen_rules(dimensions="market"))
    notify = tmp_path / "notify.yaml"
    notify.write_text(NOTIFY.replace("URL", http_receiver.url))
    args = ("--rules", str(rules), "--notify-config", str(notify))
    with serve(tmp_path, env, args, default_db=True) as served:
        yield Service(served.base, env, admin, read, _http_config(tmp_path / "amtool-http.yml", admin))


def _fire(service: Service, markets: tuple[str, ...]) -> None:
    now_ms = int(time.time() * 1000) // 60_000 * 60_000
    n = 120 * len(markets)
    events = [make_play(i, now_ms - 8 * 60_000 + i * (480_000 // n), market=markets[i % len(markets)])
              for i in range(n)]  # fmt: skip
    r = httpx.post(service.url + "/api/v1/events", json=events, timeout=30,
                   headers={"Authorization": f"Bearer {service.admin_key}"})  # fmt: skip
    assert r.status_code == 200 and r.json()["accepted"] == n, r.text
    deadline = time.monotonic() + 30
    while {a["labels"].get("market") for a in service.get("/api/v2/alerts").json()} != set(markets):
        assert time.monotonic() < deadline
        time.sleep(0.2)


def _amtool_json(result: subprocess.CompletedProcess[str]) -> list[dict[str, object]]:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_amtool_queries_alerts_and_adds_queries_and_expires_silences(service: Service) -> None:
    _fire(service, ("BR", "SE"))
    alerts = _amtool_json(service.amtool("-o", "json", "alert", "query"))
    assert sorted(a["labels"]["market"] for a in alerts) == ["BR", "SE"]  # type: ignore[index]
    assert all(a["receivers"] == [{"name": "hook"}] and a["status"]["state"] == "active" for a in alerts)  # type: ignore[index]

    added = service.amtool("silence", "add", "market=BR", "--comment", "cdn work", "--duration", "2h")
    assert added.returncode == 0, added.stderr
    sid = added.stdout.strip()
    (silence,) = _amtool_json(service.amtool("-o", "json", "silence", "query"))
    assert silence["id"] == sid and silence["status"] == {"state": "active"}
    assert silence["matchers"] == [{"name": "market", "value": "BR", "isRegex": False, "isEqual": True}]
    assert _amtool_json(service.amtool("-o", "json", "silence", "query", "market=SE")) == []

    # amtool's default query leaves silenced alerts out; --silenced shows them, muted by this silence
    shown = _amtool_json(service.amtool("-o", "json", "alert", "query"))
    assert [a["labels"]["market"] for a in shown] == ["SE"]  # type: ignore[index]
    (muted,) = _amtool_json(service.amtool("-o", "json", "alert", "query", "--silenced", "market=BR"))
    assert muted["status"] == {"state": "suppressed", "silencedBy": [sid], "inhibitedBy": []}
    # ... and so do tunewatch's own API and CLI: the same silence store
    v1 = {a["labels"]["market"]: a["silencedBy"] for a in service.get("/api/v1/alerts").json()}
    assert v1 == {"BR": [sid], "SE": []}
    listed = tunewatch_cli("silences", "list", "--output", "json", env=service.env)
    assert [s["id"] for s in json.loads(listed.stdout)] == [sid]

    expired = service.amtool("silence", "expire", sid)
    assert expired.returncode == 0, expired.stderr
    assert _amtool_json(service.amtool("-o", "json", "silence", "query")) == []
    (gone,) = _amtool_json(service.amtool("-o", "json", "silence", "query", "--expired"))
    assert gone["status"] == {"state": "expired"}
    assert len(_amtool_json(service.amtool("-o", "json", "alert", "query"))) == 2


def test_keys_are_required_and_scoped(service: Service, tmp_path: Path) -> None:
    no_key = subprocess.run([AMTOOL, f"--alertmanager.url={service.url}", "silence", "query"], capture_output=True,
                            text=True, timeout=60, check=False)  # fmt: skip
    assert no_key.returncode != 0 and "401" in no_key.stderr
    reader = _http_config(tmp_path / "read.yml", service.read_key)
    assert service.amtool("silence", "query", config=reader).returncode == 0
    refused = service.amtool("silence", "add", "market=BR", "-c", "x", config=reader)
    assert refused.returncode != 0 and "403" in refused.stderr
    assert service.get("/api/v2/silences").json() == []


def test_posted_alerts_are_routed_and_status_answers(service: Service, http_receiver: HttpReceiver) -> None:
    body = [{"labels": {"alertname": "FromPrometheus", "market": "DE"}, "annotations": {"summary": "posted"},
             "generatorURL": "http://prometheus:9090/graph"}]  # fmt: skip
    headers = {"Authorization": f"Bearer {service.admin_key}"}
    assert httpx.post(service.url + "/api/v2/alerts", json=body, headers=headers, timeout=10).status_code == 200
    (alert,) = _amtool_json(service.amtool("-o", "json", "alert", "query", "alertname=FromPrometheus"))
    assert alert["generatorURL"] == "http://prometheus:9090/graph"
    deadline = time.monotonic() + 30
    while not any(a["labels"]["alertname"] == "FromPrometheus"
                  for r in http_receiver.received for a in r.body["alerts"]):  # fmt: skip
        assert time.monotonic() < deadline, http_receiver.received
        time.sleep(0.2)
    (group,) = service.get("/api/v2/alerts/groups").json()
    assert group["receiver"] == {"name": "hook"} and group["labels"] == {"market": "DE"}
    status = service.get("/api/v2/status").json()
    assert status["cluster"]["status"] == "disabled" and "receiver: hook" in status["config"]["original"]
    # a resolved post (endsAt in the past) resolves it
    past = "2000-01-01T00:00:00Z"
    resolved = [{**body[0], "startsAt": "1999-12-31T23:00:00Z", "endsAt": past}]
    assert httpx.post(service.url + "/api/v2/alerts", json=resolved, headers=headers, timeout=10).status_code == 200
    assert _amtool_json(service.amtool("-o", "json", "alert", "query", "alertname=FromPrometheus")) == []
