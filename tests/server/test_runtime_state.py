"""One owner per piece of state: the runtime hands one alert log and one silence store to the service and its
notifier; one alert change is stored once, and a restart regroups notifications from that log."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BASE_MS
from tests.notify.peers import HttpReceiver
from tests.server.rules import plays_seen_rules
from tests.server.servers import local_client
from tunewatch.alert.log import AlertLog
from tunewatch.alert.model import Alert
from tunewatch.alert.rules import parse_rules
from tunewatch.server.runtime import Runtime, build_runtime
from tunewatch.server.settings import ServerSettings

NOTIFY = """
route: {receiver: hook, group_by: [market], group_wait: 1h, group_interval: 1h, repeat_interval: 4h}
receivers:
  - name: hook
    webhook_configs: [{url: "URL/hook"}]
"""


def _runtime(tmp_path: Path, http_receiver: HttpReceiver) -> Runtime:
    config = tmp_path / "notify.yaml"
    config.write_text(NOTIFY.replace("URL", http_receiver.url))
    settings = ServerSettings(db=tmp_path / "tw.db", notify_config=config, notify_db=tmp_path / "notify.db")
    return build_runtime(settings, rules=parse_rules(plays_seen_rules(dimensions="market")),
                         clock=lambda: BASE_MS / 1000 + 3600)  # fmt: skip


def test_one_alert_change_is_stored_once_and_regrouped_after_a_restart(
    tmp_path: Path, http_receiver: HttpReceiver, play: Callable[..., dict[str, Any]]
) -> None:
    first = _runtime(tmp_path, http_receiver)
    assert first.notifier is not None
    assert first.service.alert_log is first.alert_log is first.notifier.pipeline.history
    assert first.service.silences is first.silences is first.notifier.pipeline.silences
    events = [play(i, BASE_MS + i * 1000, market="BR" if i % 2 else "SE") for i in range(300)]
    local_client(first.app()).post("/api/v1/events", content=json.dumps(events))
    changes = first.service.alert_history()
    assert {a.labels["market"] for a in changes} == {"BR", "SE"}
    first.service.checkpoint()
    first.close()

    with sqlite3.connect(tmp_path / "tw.db") as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        rows = conn.execute("SELECT COUNT(*) FROM alert_log").fetchone()[0]
    assert rows == len(changes)  # each change once (before: once per log, three logs)
    assert {t for t in tables if "alert" in t} == {"alert_log"}
    with sqlite3.connect(tmp_path / "notify.db") as conn:
        assert not {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE name LIKE '%alert%'")}

    again = _runtime(tmp_path, http_receiver)  # group_wait 1h: nothing was sent; the groups come back from the log
    assert again.notifier is not None
    groups = again.notifier.pipeline._groups
    assert sorted(g.labels["market"] for g in groups.values()) == ["BR", "SE"]
    assert {a.fingerprint for a in again.service.active_alerts()} == {a.fingerprint for a in changes}
    again.close()


def test_the_former_service_log_is_adopted_once(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    alert = Alert({"alertname": "PlaysDrop", "market": "BR"}, {"summary": "down"}, "firing", 60_000)
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE server_alert_log (seq INTEGER PRIMARY KEY AUTOINCREMENT, fingerprint TEXT, "
                     "status TEXT, alert TEXT, recorded_ms INTEGER)")  # fmt: skip
        conn.execute("INSERT INTO server_alert_log (fingerprint, status, alert, recorded_ms) VALUES (?, ?, ?, ?)",
                     (alert.fingerprint, "firing", json.dumps(alert.to_dict()), 120_000))  # fmt: skip
        conn.execute("CREATE TABLE notify_alerts (fingerprint TEXT PRIMARY KEY, alert TEXT, updated_ms INTEGER)")
    log = AlertLog.open(db)
    assert [a.fingerprint for a in log.active()] == [alert.fingerprint] and log.restored == {alert.fingerprint}
    log.close()
    log = AlertLog.open(db)  # opened again: nothing adopted twice
    assert len(log.entries()) == 1
    log.close()
    with sqlite3.connect(db) as conn:
        assert not conn.execute("SELECT name FROM sqlite_master WHERE name IN ('server_alert_log', 'notify_alerts')"
                                ).fetchall()  # fmt: skip


def test_the_uvicorn_factory_notifies_as_serve_does(
    tmp_path: Path, http_receiver: HttpReceiver, play: Callable[..., dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``server/entry.py`` builds the same runtime as ``tunewatch serve``: with TUNEWATCH_NOTIFY_CONFIG its alerts
    are delivered (before, the factory had no notifications at all)."""
    from tunewatch.server.entry import app_from_env

    config = tmp_path / "notify.yaml"
    config.write_text(NOTIFY.replace("URL", http_receiver.url).replace("group_wait: 1h", "group_wait: 0s"))
    rules = tmp_path / "rules.yaml"
    rules.write_text(plays_seen_rules(dimensions="market"))
    for name, value in {"DB": tmp_path / "tw.db", "NOTIFY_CONFIG": config, "RULES": rules}.items():
        monkeypatch.setenv(f"TUNEWATCH_{name}", str(value))
    now_ms = int(time.time() * 1000) // 60_000 * 60_000
    events = [play(i, now_ms - 8 * 60_000 + i * 2000, market="BR") for i in range(240)]
    with local_client(app_from_env()) as client:  # the lifespan's shutdown stops the notifier (a last flush)
        r = client.post("/api/v1/events", content=json.dumps(events))
        assert r.status_code == 200 and r.json()["accepted"] == 240, r.text
    markets = {a["labels"].get("market") for r in http_receiver.received for a in r.body["alerts"]}
    assert markets == {"BR"}
