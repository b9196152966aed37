"""Grouping, repeat intervals, resolved notifications, inhibition and silences in simulated time (dry run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunewatch.alert.model import Alert
from tunewatch.clock import ManualClock
from tunewatch.notify import NotificationPipeline, NotifyConfig, parse_matchers
from tunewatch.notify.outbox import Notification

T0 = 1_767_571_200_000
S, M, H = 1_000, 60_000, 3_600_000

CONFIG = """
route:
  receiver: team
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
  routes:
    - matchers: ['severity="critical"']
      receiver: pager
      continue: true
    - matchers: ['market=~"BR|AR"']
      receiver: latam
      group_by: [alertname, market]
receivers:
  - name: team
    webhook_configs: [{url: "http://127.0.0.1:9/team"}]
  - name: pager
    webhook_configs: [{url: "http://127.0.0.1:9/pager"}]
  - name: latam
    webhook_configs: [{url: "http://127.0.0.1:9/latam", send_resolved: false}]
inhibit_rules:
  - source_matchers: ['alertname="GlobalOutage"']
    target_matchers: ['severity="warning"']
    equal: [cdn]
"""


def alert(name: str, status: str = "firing", start: int = T0, end: int | None = None, **labels: str) -> Alert:
    return Alert({"alertname": name, **labels}, {"summary": f"{name} summary"}, status, start, end)  # type: ignore[arg-type]


@pytest.fixture
def pipe() -> NotificationPipeline:
    return NotificationPipeline(NotifyConfig.from_yaml(CONFIG), ":memory:", ManualClock(T0), dry_run=True)


def sent(p: NotificationPipeline, receiver: str) -> list[Notification]:
    return [n for n in p.outbox.history(receiver) if n.status == "sent"]


def names(n: Notification) -> list[tuple[str, str]]:
    return [(a["labels"].get("market", ""), a["status"]) for a in n.alerts]


def test_group_wait_batches_alerts_that_start_together(pipe: NotificationPipeline) -> None:
    pipe.process([alert("HighSkipRate", market="DE", severity="warning")], T0)
    pipe.process([alert("HighSkipRate", market="FR", severity="warning", start=T0 + 10 * S)], T0 + 10 * S)
    assert pipe.flush(T0 + 29 * S).sent == {}  # group_wait not over
    report = pipe.flush(T0 + 30 * S)
    assert report.sent == {"team": 1}
    (n,) = sent(pipe, "team")
    assert names(n) == [("DE", "firing"), ("FR", "firing")]
    assert n.group_key == '{}:{alertname="HighSkipRate"}' and n.created_ms == T0 + 30 * S


def test_group_interval_and_repeat_interval(pipe: NotificationPipeline) -> None:
    pipe.process([alert("HighSkipRate", market="DE")], T0)
    pipe.flush(T0 + 30 * S)
    # a new alert in a flushed group waits for the next group_interval tick, not group_wait
    pipe.process([alert("HighSkipRate", market="FR", start=T0 + M)], T0 + M)
    assert pipe.flush(T0 + 2 * M).sent == {}
    assert pipe.flush(T0 + 30 * S + 5 * M).sent == {"team": 1}
    assert names(sent(pipe, "team")[-1]) == [("DE", "firing"), ("FR", "firing")]
    # nothing changes: no notification until repeat_interval (4h) has passed, then one per 4h
    pipe.flush(T0 + 4 * H)
    assert len(sent(pipe, "team")) == 2
    pipe.flush(T0 + 5 * H)
    assert len(sent(pipe, "team")) == 3
    pipe.flush(T0 + 9 * H)
    assert len(sent(pipe, "team")) == 4
    # group flushes run at their own due times even when the caller jumps ahead; a repeat goes out at the
    # first group_interval tick *after* last + repeat_interval (Alertmanager compares strictly)
    created = [n.created_ms - T0 for n in sent(pipe, "team")]
    assert created[2:] == [30 * S + 4 * H + 10 * M, 30 * S + 8 * H + 15 * M]


def test_resolved_notifications_and_send_resolved_false(pipe: NotificationPipeline) -> None:
    pipe.process([alert("HighFailureRate", market="BR")], T0)
    pipe.flush(T0 + M)
    assert len(sent(pipe, "latam")) == 1  # BR goes to latam only (no continue, not critical)
    assert sent(pipe, "team") == []
    pipe.process([alert("HighFailureRate", "resolved", end=T0 + 10 * M, market="BR")], T0 + 10 * M)
    pipe.flush(T0 + 11 * M)
    # latam has send_resolved: false: the resolution is logged (skipped), not sent
    assert len(sent(pipe, "latam")) == 1
    assert [n.status for n in pipe.outbox.history("latam")] == ["sent", "skipped"]
    assert pipe.stats.skipped["latam"] == 1
    # the group is gone; a re-fire is a new notification
    pipe.process([alert("HighFailureRate", market="BR", start=T0 + 20 * M)], T0 + 20 * M)
    pipe.flush(T0 + 21 * M)
    assert len(sent(pipe, "latam")) == 2


def test_resolved_is_sent_with_send_resolved(pipe: NotificationPipeline) -> None:
    pipe.process([alert("HighSkipRate", market="DE"), alert("HighSkipRate", market="FR")], T0)
    pipe.flush(T0 + M)
    pipe.process([alert("HighSkipRate", "resolved", end=T0 + 2 * M, market="FR")], T0 + 2 * M)
    pipe.flush(T0 + 7 * M)
    last = sent(pipe, "team")[-1]
    assert names(last) == [("DE", "firing"), ("FR", "resolved")]
    # the resolved alert left the group after being carried once
    pipe.flush(T0 + 12 * M)
    assert len(sent(pipe, "team")) == 2


def test_routing_continue_sends_to_both(pipe: NotificationPipeline) -> None:
    pipe.process([alert("CdnDown", market="BR", severity="critical")], T0)
    report = pipe.flush(T0 + M)
    assert report.sent == {"pager": 1, "latam": 1}
    assert sent(pipe, "latam")[0].group_labels == {"alertname": "CdnDown", "market": "BR"}


def test_fired_and_resolved_within_group_wait_is_not_sent(pipe: NotificationPipeline) -> None:
    pipe.process([alert("HighSkipRate", market="DE")], T0)
    pipe.process([alert("HighSkipRate", "resolved", end=T0 + 10 * S, market="DE")], T0 + 10 * S)
    assert pipe.flush(T0 + M).sent == {}
    assert pipe.outbox.history() == []


def test_inhibition_mutes_targets_with_equal_labels(pipe: NotificationPipeline) -> None:
    pipe.process(
        [
            alert("GlobalOutage", cdn="edge-2", severity="critical"),
            alert("HighSkipRate", market="DE", cdn="edge-2", severity="warning"),
            alert("HighSkipRate", market="FR", cdn="edge-1", severity="warning"),
        ],
        T0,
    )
    pipe.flush(T0 + M)
    team = sent(pipe, "team")
    shown = sorted((n.group_labels["alertname"], m) for n in team for m, _ in names(n))
    assert shown == [("HighSkipRate", "FR")]
    assert [n.group_labels["alertname"] for n in sent(pipe, "pager")] == ["GlobalOutage"]  # critical → pager
    assert pipe.stats.inhibited == 1
    # the source resolves: the inhibited alert is notified at the next tick
    pipe.process([alert("GlobalOutage", "resolved", end=T0 + 2 * M, cdn="edge-2", severity="critical")], T0 + 2 * M)
    pipe.flush(T0 + M + 5 * M)
    skip = [n for n in sent(pipe, "team") if n.group_labels["alertname"] == "HighSkipRate"]
    assert sorted(names(skip[-1])) == [("DE", "firing"), ("FR", "firing")]


def test_silence_mutes_until_it_ends_and_expire_lifts_it(pipe: NotificationPipeline) -> None:
    pipe.silences.add(parse_matchers(["market=DE"]), starts_at=T0, ends_at=T0 + H, created_by="ops",
                      comment="maintenance", now_ms=T0)  # fmt: skip
    future = pipe.silences.add(parse_matchers(["market=FR"]), starts_at=T0 + 2 * H, ends_at=T0 + 3 * H,
                               created_by="ops", comment="later", now_ms=T0)  # fmt: skip
    pipe.process([alert("HighSkipRate", market="DE"), alert("HighSkipRate", market="FR")], T0)
    pipe.flush(T0 + M)
    assert names(sent(pipe, "team")[-1]) == [("FR", "firing")]  # the FR silence is still pending
    pipe.flush(T0 + 30 * M)
    assert len(sent(pipe, "team")) == 1
    # the DE silence ends at T0+1h: DE is new to the receiver at the next tick
    pipe.flush(T0 + H + 5 * M)
    assert names(sent(pipe, "team")[-1]) == [("DE", "firing"), ("FR", "firing")]
    # expiring the FR silence before it starts means it never mutes
    muted_so_far = pipe.stats.silenced
    assert muted_so_far == 12  # DE left out of each 5-minute flush for the silence's hour
    pipe.silences.expire(future.id, T0 + H + 10 * M)
    pipe.flush(T0 + 2 * H + 30 * M)
    assert pipe.stats.silenced == muted_so_far
    assert pipe.silences.find(T0 + 2 * H, "active") == []


def test_silence_also_mutes_resolved(pipe: NotificationPipeline) -> None:
    pipe.process([alert("HighSkipRate", market="DE")], T0)
    pipe.flush(T0 + M)
    pipe.silences.add(parse_matchers(['alertname=~"High.*"']), starts_at=T0 + M, ends_at=T0 + H, created_by="ops",
                      comment="ack", now_ms=T0 + M)  # fmt: skip
    pipe.process([alert("HighSkipRate", "resolved", end=T0 + 2 * M, market="DE")], T0 + 2 * M)
    pipe.flush(T0 + 10 * M)
    assert len(sent(pipe, "team")) == 1


def test_state_survives_restart_no_duplicates(tmp_path: Path) -> None:
    db = tmp_path / "tw.db"
    cfg = NotifyConfig.from_yaml(CONFIG)
    with NotificationPipeline(cfg, db, ManualClock(T0), dry_run=True) as p:
        p.process([alert("HighSkipRate", market="DE")], T0)
        p.flush(T0 + M)
        assert len(sent(p, "team")) == 1
    # restart: the alert is restored and regrouped; the nflog prevents a second notification
    with NotificationPipeline(cfg, db, ManualClock(T0 + 2 * M), dry_run=True) as p:
        p.flush(T0 + 10 * M)
        assert len(sent(p, "team")) == 1
        p.process([alert("HighSkipRate", "resolved", end=T0 + 11 * M, market="DE")], T0 + 11 * M)
        p.flush(T0 + 20 * M)
        assert names(sent(p, "team")[-1]) == [("DE", "resolved")]


def test_group_by_all_labels() -> None:
    cfg = NotifyConfig.from_yaml(
        "route: {receiver: r, group_by: ['...'], group_wait: 0s}\n"
        "receivers: [{name: r, webhook_configs: [{url: 'http://127.0.0.1:9/'}]}]"
    )
    p = NotificationPipeline(cfg, dry_run=True)
    p.process([alert("A", market="DE"), alert("A", market="FR")], T0)
    assert p.flush(T0).sent == {"r": 2}
    assert p.stats.alerts_received == 2 and p.stats.total_sent == 2


def test_many_groups_over_a_simulated_day_is_fast(pipe: NotificationPipeline) -> None:
    import time

    t = time.perf_counter()
    for minute in range(0, 24 * 60, 10):
        now = T0 + minute * M
        batch = [alert(f"Rule{i % 20}", market=f"M{i}", start=now) for i in range(minute % 50, minute % 50 + 20)]
        pipe.process(batch, now)
        pipe.flush(now)
    pipe.flush(T0 + 25 * H)
    elapsed = time.perf_counter() - t
    assert pipe.stats.total_sent > 0
    assert elapsed < 10
