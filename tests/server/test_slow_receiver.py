"""Delivery never blocks detection (issue 14): a webhook receiver slower than its timeout, behind the live
service's notifier, leaves ingest latency and the timing of alert changes as they are without it."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BASE_MS
from tests.notify.peers import HttpReceiver
from tests.server.rules import plays_seen_rules
from tunewatch.alert.model import Alert
from tunewatch.alert.rules import parse_rules
from tunewatch.ingest.batch import RawBatch
from tunewatch.notify import BackgroundNotifier, NotificationPipeline, NotifyConfig
from tunewatch.server import LiveService

pytestmark = pytest.mark.integration

MARKETS = ["BR", "US", "DE", "FR", "GB", "JP", "MX", "IN"]


def _run(
    notifier: BackgroundNotifier | None, play: Callable[..., dict[str, Any]], seen: list[Alert] | None = None
) -> tuple[list[float], list[float]]:
    """Ingest one minute per market (each fires PlaysSeen for a new market): seconds per step, and the delay
    between each alert change and the step that made it returning. Alert changes are added to ``seen``."""
    fired: list[float] = []

    def on_alert(alert: Alert) -> None:
        fired.append(time.perf_counter())
        if seen is not None:
            seen.append(alert)
        if notifier is not None:
            notifier(alert)

    service = LiveService(
        parse_rules(plays_seen_rules(dimensions="market")), clock=lambda: BASE_MS / 1000 + 3600, on_alert=on_alert
    )
    steps: list[float] = []
    handed: list[float] = []
    for m, market in enumerate(MARKETS):
        minute = BASE_MS + m * 60_000
        events = [play(m * 1000 + i, minute + i * 100, market=market, event_id=f"s{m}-{i}") for i in range(50)]
        events.append(play(m * 1000 + 999, minute + 3 * 60_000, market=market, event_id=f"tick{m}"))  # closes it
        t0 = time.perf_counter()
        service.ingest(RawBatch.from_records(events, source="test"))
        steps.append(time.perf_counter() - t0)
        handed.extend(time.perf_counter() - f for f in fired)
        fired.clear()
        time.sleep(0.3)  # the notifier's flush picks the new alert up and starts delivering it
    return steps, handed


def test_a_receiver_slower_than_its_timeout_does_not_delay_ingest_or_alerts(
    play: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    receiver = HttpReceiver(hang_s=3.0).start()
    receiver.script.extend(["hang"] * 100)  # answers after 3 s (drops the connection): always too late
    config = NotifyConfig.from_yaml(f"""
route: {{receiver: slow, group_by: [market], group_wait: 0s, group_interval: 1s, repeat_interval: 4h}}
receivers:
  - name: slow
    webhook_configs: [{{url: "{receiver.url}/hook", timeout: 1s}}]
delivery: {{attempts: 2, retry_initial: 100ms, backoff_initial: 30s, backoff_max: 5m}}
""")
    try:
        baseline_steps, baseline_handed = _run(None, play)
        notifier = BackgroundNotifier(NotificationPipeline(config, tmp_path / "notify.db"), max_sleep_s=0.2).start()
        try:
            steps, handed = _run(notifier, play)
            assert receiver.requests >= 2  # deliveries were stuck on the receiver meanwhile
        finally:
            t0 = time.perf_counter()
            notifier.stop()
            stop_s = time.perf_counter() - t0
    finally:
        receiver.stop()
    assert len(handed) == len(baseline_handed) >= len(MARKETS)  # the same alert changes, each in its step
    slowest = max(baseline_steps)
    assert max(steps) < slowest + 0.5, (steps, baseline_steps)  # with the old lock: + 2 s per delivery round
    assert max(handed) < 0.5
    assert stop_s < 30


def test_alerts_with_an_unwarmed_explanation_are_delivered(play: Callable[..., dict[str, Any]], tmp_path: Path) -> None:
    """Alert explanations hold NaN before a detector has warmed up; they reach the receiver as null instead of
    failing (and being retried) forever."""
    receiver = HttpReceiver().start()
    config = NotifyConfig.from_yaml(f"""
route: {{receiver: ok, group_by: [market], group_wait: 0s, group_interval: 1s, repeat_interval: 4h}}
receivers:
  - name: ok
    webhook_configs: [{{url: "{receiver.url}/hook"}}]
""")
    try:
        notifier = BackgroundNotifier(NotificationPipeline(config, tmp_path / "notify.db"), max_sleep_s=0.2).start()
        seen: list[Alert] = []
        try:
            _run(notifier, play, seen)
        finally:
            notifier.stop()
    finally:
        receiver.stop()
    alerts = [a for r in receiver.received for a in r.body["alerts"]]
    assert {a["labels"]["market"] for a in alerts} == {a.labels["market"] for a in seen if a.status == "firing"}
    explained = [a["explanation"] for a in alerts if "explanation" in a]
    assert explained and any(e.get("expected", 0) is None for e in explained)
