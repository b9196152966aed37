"""tunewatch's webhook payload equals a real Alertmanager's for the same alerts and routing (issue 15):
keys, groupKey (labels joined with ", ", route matchers in the key), externalURL, fingerprints."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.notify.peers import HttpReceiver, real_alertmanager
from tunewatch.alert.model import Alert, format_time
from tunewatch.clock import ManualClock
from tunewatch.notify import NotificationPipeline, NotifyConfig

pytestmark = pytest.mark.integration

EXTERNAL = "https://tunewatch.example.com"
ROUTES = """
route:
  receiver: hook
  group_by: [alertname, market]
  group_wait: 1s
  routes:
    - receiver: hook
      matchers: ['severity="critical"', 'metric=~"failure_.*"']
receivers:
  - name: hook
    webhook_configs: [{url: "%s/hook", send_resolved: true}]
"""
BASE = {"alertname": "PlaybackFailuresUp", "severity": "critical", "metric": "failure_rate", "market": "BR"}
LABELS = [{**BASE, "cdn": "edge-2"}, {**BASE, "cdn": "edge-3"}]
ANNOTATIONS = {"summary": "Playback failures up in BR", "runbook_url": "https://runbooks.example.com/x"}


def _time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _wait(receiver: HttpReceiver, n: int, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while len(receiver.received) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(receiver.received) >= n, "alertmanager sent no webhook"


def test_webhook_payload_equals_real_alertmanager(http_receiver: HttpReceiver, tmp_path: Path) -> None:
    now = int(time.time() * 1000) - 60_000
    config = ROUTES % http_receiver.url
    with real_alertmanager(tmp_path, config=config, external_url=EXTERNAL) as am:
        posted = [{"labels": labels, "annotations": ANNOTATIONS, "startsAt": format_time(now)} for labels in LABELS]
        assert httpx.post(f"{am}/api/v2/alerts", json=posted, timeout=5).status_code == 200
        _wait(http_receiver, 1)
    theirs: dict[str, Any] = http_receiver.received[0].body

    cfg = NotifyConfig.from_yaml(config, settings=f"external_url: {EXTERNAL}")
    with NotificationPipeline(cfg, ":memory:", ManualClock(now)) as p:
        p.process([Alert(dict(labels), dict(ANNOTATIONS), "firing", now) for labels in LABELS], now)
        assert p.flush(now + 2_000).sent == {"hook": 1}
    ours: dict[str, Any] = http_receiver.received[-1].body

    assert set(ours) == set(theirs)
    for key in ("version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels", "commonLabels",
                "commonAnnotations", "externalURL"):  # fmt: skip
        assert ours[key] == theirs[key], key
    route_key = '{}/{metric=~"failure_.*",severity="critical"}'
    assert ours["groupKey"] == route_key + ':{alertname="PlaybackFailuresUp", market="BR"}'
    assert len(ours["alerts"]) == len(theirs["alerts"]) == 2
    by_fp = {a["fingerprint"]: a for a in theirs["alerts"]}
    for mine in ours["alerts"]:
        real = by_fp[mine["fingerprint"]]  # same fingerprints
        assert set(real) <= set(mine)  # ours adds the explanation
        assert (mine["status"], mine["labels"], mine["annotations"]) == (real["status"], real["labels"],
                                                                          real["annotations"])  # fmt: skip
        assert _time(mine["startsAt"]) == _time(real["startsAt"]) and mine["endsAt"] == real["endsAt"]
        # Alertmanager passes on the sender's generatorURL; tunewatch links the console view of the series
        assert mine["generatorURL"] == f"{EXTERNAL}/?metric=failure_rate&market=BR&cdn={mine['labels']['cdn']}"


def test_external_url_defaults_to_the_served_address(http_receiver: HttpReceiver) -> None:
    cfg = NotifyConfig.from_yaml(ROUTES % http_receiver.url)
    a = Alert(dict(LABELS[0]), dict(ANNOTATIONS), "firing", 0)
    with NotificationPipeline(cfg, ":memory:", ManualClock(0), external_url="http://10.0.0.5:8080") as p:
        p.process([a], 0)
        p.flush(2_000)
    body = http_receiver.received[0].body
    assert body["externalURL"] == "http://10.0.0.5:8080"
    assert body["alerts"][0]["generatorURL"].startswith("http://10.0.0.5:8080/?metric=failure_rate")
