"""The simulator's day (seed 7) through the notification pipeline: alerts raised vs notifications sent.

``data/day7_alerts.ndjson`` is what ``tunewatch backtest`` wrote for ``simulate --minutes 1440 --seed 7`` with
the default rule pack (13 alerts, each firing then resolved). The alerts are fed in event time (firing when
the rule fired, resolved when it resolved) to a pipeline that delivers to a real HTTP webhook receiver; the
clock is simulated, so a day takes a fraction of a second.
"""

from __future__ import annotations

import json
from collections import Counter
from itertools import groupby
from pathlib import Path

import pytest

from tests.notify.peers import HttpReceiver
from tunewatch.alert.model import Alert
from tunewatch.clock import ManualClock
from tunewatch.notify import NotificationPipeline, NotifyConfig

DAY = Path(__file__).with_name("data") / "day7_alerts.ndjson"
M = 60_000

CONFIG = """
route:
  receiver: oncall
  group_by: [GROUP_BY]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
receivers:
  - name: oncall
    webhook_configs: [{url: "URL/hook"}]
"""


def _changes() -> list[tuple[int, Alert]]:
    out = []
    for line in DAY.read_text(encoding="utf-8").splitlines():
        alert = Alert.from_dict(json.loads(line))
        at = alert.extra["fired_at"] if alert.status == "firing" else alert.extra["resolved_at"]
        out.append((int(at), alert))
    return sorted(out, key=lambda c: c[0])


def _replay_day(receiver: HttpReceiver, group_by: str, tmp_path: Path) -> NotificationPipeline:
    config = NotifyConfig.from_yaml(CONFIG.replace("GROUP_BY", group_by).replace("URL", receiver.url))
    changes = _changes()
    clock = ManualClock(changes[0][0])
    pipe = NotificationPipeline(config, tmp_path / "notify.db", clock)
    for at, same_time in groupby(changes, key=lambda c: c[0]):  # the engine emits these in one batch
        clock.set(at)
        pipe.process([a for _, a in same_time], at)
        pipe.flush(at)
    end = changes[-1][0] + 60 * M
    while (due := pipe.next_due_ms()) is not None and due <= end:  # run every flush that falls due
        clock.set(due)
        pipe.flush(due)
    return pipe


@pytest.mark.integration
def test_day7_alerts_vs_notifications_after_grouping(http_receiver: HttpReceiver, tmp_path: Path) -> None:
    changes = _changes()
    raised = sum(a.status == "firing" for _, a in changes)
    assert raised == 13 and len(changes) == 26
    pipe = _replay_day(http_receiver, "alertname", tmp_path)
    sent = pipe.stats.sent["oncall"]
    assert sent == len(http_receiver.received) and pipe.pending() == 0
    bodies = [r.body for r in http_receiver.received]
    assert all(b["version"] == "4" for b in bodies)
    # every alert reached the receiver, firing and resolved, and grouping sent fewer messages than changes
    seen = Counter((a["fingerprint"], a["status"]) for b in bodies for a in b["alerts"])
    assert {fp for fp, status in seen if status == "firing"} == {a.fingerprint for _, a in changes}
    assert {fp for fp, status in seen if status == "resolved"} == {a.fingerprint for _, a in changes}
    assert sent < len(changes)
    # the history table holds every state change the pipeline received
    assert [e.state for e in pipe.history.entries()].count("firing") == raised
    pipe.close()
    (tmp_path / "x").mkdir()
    # the same day grouped more finely sends more messages, never more than one per alert change
    finer = _replay_day(http_receiver, "alertname, market, cdn, platform, track_id, source", tmp_path / "x")
    assert sent <= finer.stats.sent["oncall"] <= len(changes)
    print(f"\nday 7: {raised} alerts raised ({len(changes)} changes); notifications sent: {sent} grouped by alertname,"
          f" {finer.stats.sent['oncall']} grouped by alertname and dimensions")  # fmt: skip
    finer.close()
