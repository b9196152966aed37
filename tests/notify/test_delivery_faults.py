"""Delivery against a real HTTP receiver on loopback: 500s, timeouts, outages, restarts, rate limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.notify.peers import HttpReceiver
from tunewatch.alert.model import Alert
from tunewatch.clock import ManualClock
from tunewatch.notify import NotificationPipeline, NotifyConfig

pytestmark = pytest.mark.integration

T0 = 1_767_571_200_000
M = 60_000


def config(url: str, *, other_url: str | None = None, timeout: str = "2s", extra: str = "") -> NotifyConfig:
    other = (
        f"""
  - name: other
    webhook_configs: [{{url: "{other_url}/other"}}]"""
        if other_url
        else ""
    )
    routes = ""
    if other_url:
        routes = "  routes: [{matchers: ['team=\"other\"'], receiver: other, continue: true}, {receiver: ops}]"
    return NotifyConfig.from_yaml(f"""
route:
  receiver: ops
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1m
  repeat_interval: 4h
{routes}
receivers:
  - name: ops
    {extra}
    webhook_configs: [{{url: "{url}/ops", timeout: {timeout}}}]{other}
delivery: {{attempts: 2, retry_initial: 100ms, backoff_initial: 30s, backoff_max: 5m}}
""")


def firing(name: str, **labels: str) -> Alert:
    return Alert({"alertname": name, **labels}, {"summary": name}, "firing", T0)


def keys(receiver: HttpReceiver) -> list[str]:
    return [r.headers["Idempotency-Key"] for r in receiver.received]


def test_500_then_ok_is_delivered_exactly_once(http_receiver: HttpReceiver) -> None:
    http_receiver.script.extend(["500", "500", "500"])  # round 1: 2 tries fail; round 2: 500 then ok
    clock = ManualClock(T0)
    with NotificationPipeline(config(http_receiver.url), ":memory:", clock) as p:
        p.process([firing("HighFailureRate", market="BR")], T0)
        report = p.flush(T0)
        assert report.sent == {} and report.retrying == 1 and report.pending == 1
        assert clock.slept_s > 0  # in-line retry waited (on the simulated clock)
        assert p.flush(T0 + 10_000).sent == {}  # backoff not over: no attempt
        assert http_receiver.requests == 2
        assert p.flush(T0 + 10 * M).sent == {"ops": 1}
        for t in range(11, 20):
            p.flush(T0 + t * M)  # group ticks: nothing new
    assert http_receiver.requests == 4
    assert len(http_receiver.received) == 1
    body = http_receiver.received[0].body
    assert body["version"] == "4" and body["status"] == "firing" and body["receiver"] == "ops"
    assert body["alerts"][0]["labels"] == {"alertname": "HighFailureRate", "market": "BR"}


def test_timeout_then_ok_is_delivered_exactly_once(http_receiver: HttpReceiver) -> None:
    http_receiver.hang_s = 0.6
    http_receiver.script.extend(["hang"])
    with NotificationPipeline(config(http_receiver.url, timeout="300ms"), ":memory:", ManualClock(T0)) as p:
        p.process([firing("HighFailureRate")], T0)
        report = p.flush(T0)  # try 1 times out, try 2 succeeds
        assert report.sent == {"ops": 1}
        p.flush(T0 + 5 * M)
        assert [n.attempts for n in p.outbox.history()] == [2]
    assert http_receiver.requests == 2 and len(http_receiver.received) == 1


def test_receiver_down_then_back_gets_everything_once_in_order(tmp_path: Path) -> None:
    receiver = HttpReceiver()  # not started: connection refused
    db = tmp_path / "tw.db"
    cfg = config(receiver.url)
    with NotificationPipeline(cfg, db, ManualClock(T0)) as p:
        p.process([firing("A")], T0)
        p.flush(T0)
        p.process([firing("A", market="DE"), firing("B")], T0 + M)
        p.flush(T0 + 2 * M)
        p.process([Alert({"alertname": "B"}, {}, "resolved", T0, T0 + 3 * M)], T0 + 3 * M)
        p.flush(T0 + 4 * M)
        assert p.pending() == 4  # A, A+DE, B firing, B resolved
    # the process restarts; the receiver comes back
    receiver.start()
    try:
        with NotificationPipeline(cfg, db, ManualClock(T0 + 20 * M)) as p:
            report = p.flush(T0 + 20 * M)
            assert report.sent == {"ops": 4} and report.pending == 0
            for t in range(21, 40):
                p.flush(T0 + t * M)
        with NotificationPipeline(cfg, db, ManualClock(T0 + 41 * M)) as p:
            p.flush(T0 + 41 * M)
    finally:
        receiver.stop()
    got = [(r.body["groupLabels"]["alertname"], [a["labels"].get("market", "") for a in r.body["alerts"]],
            r.body["status"]) for r in receiver.received]  # fmt: skip
    assert got == [("A", [""], "firing"), ("A", ["", "DE"], "firing"), ("B", [""], "firing"), ("B", [""], "resolved")]
    assert len(set(keys(receiver))) == 4


def test_one_failing_receiver_does_not_block_others(http_receiver: HttpReceiver) -> None:
    dead = HttpReceiver()  # never started
    cfg = config(dead.url, other_url=http_receiver.url)
    with NotificationPipeline(cfg, ":memory:", ManualClock(T0)) as p:
        p.process([firing("CdnDown", team="other")], T0)
        report = p.flush(T0)
    assert report.sent == {"other": 1} and report.retrying == 1
    assert [r.path for r in http_receiver.received] == ["/other"]


def test_permanent_error_is_not_retried(http_receiver: HttpReceiver) -> None:
    http_receiver.script.extend(["400"])
    with NotificationPipeline(config(http_receiver.url), ":memory:", ManualClock(T0)) as p:
        p.process([firing("A")], T0)
        report = p.flush(T0)
        assert report.failed == {"ops": 1} and http_receiver.requests == 1  # no retry of that notification
        assert "HTTP 400" in p.outbox.history()[0].last_error
        # the receiver was never told: the next group tick decides a new notification (as Alertmanager does)
        assert p.flush(T0 + M).sent == {"ops": 1}
        p.flush(T0 + 30 * M)
    assert http_receiver.requests == 2 and len(http_receiver.received) == 1


def test_rate_limit_defers_without_dropping(http_receiver: HttpReceiver) -> None:
    cfg = config(http_receiver.url, extra="rate_limit: 2/minute")
    with NotificationPipeline(cfg, ":memory:", ManualClock(T0)) as p:
        p.process([firing("A"), firing("B"), firing("C")], T0)
        report = p.flush(T0)
        assert report.sent == {"ops": 2} and report.pending == 1
        assert p.outbox.pending()[0].last_error == "rate limited"
    assert len(http_receiver.received) == 2


def test_secret_url_never_in_errors(http_receiver: HttpReceiver, caplog: pytest.LogCaptureFixture) -> None:
    http_receiver.script.extend(["500"] * 4)
    secret_url = f"{http_receiver.url}/T000/B000/s3cr3tT0ken"
    cfg = NotifyConfig.from_yaml(f"""
route: {{receiver: ops, group_wait: 0s}}
receivers: [{{name: ops, webhook_configs: [{{url: "{secret_url}"}}]}}]
delivery: {{attempts: 1}}
""")
    with NotificationPipeline(cfg, ":memory:", ManualClock(T0)) as p:
        p.process([firing("A")], T0)
        p.flush(T0)
        errors = [n.last_error for n in p.outbox.history()]
    assert errors and all("HTTP 500" in e for e in errors)
    assert "s3cr3tT0ken" not in " ".join(errors) + caplog.text
    assert "s3cr3tT0ken" not in repr(cfg)
