"""The notification pipeline as the live service's ``on_alert``: built from a config file, with history."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.notify.peers import HttpReceiver
from tunewatch.alert.model import Alert
from tunewatch.clock import FunctionClock, ManualClock
from tunewatch.notify import BackgroundNotifier, NotificationPipeline

T0 = 1_767_571_200_000

CONFIG = """
route: {receiver: oncall, group_by: [alertname], group_wait: 0s, group_interval: 5m, repeat_interval: 4h}
receivers:
  - name: oncall
    webhook_configs: [{url: "URL/hook"}]
"""


def _alert(status: str = "firing") -> Alert:
    return Alert({"alertname": "PlaysDrop", "market": "BR"}, {"summary": "plays down"}, status, T0,  # type: ignore[arg-type]
                 T0 + 600_000 if status == "resolved" else None)  # fmt: skip


@pytest.mark.integration
def test_background_notifier_delivers_and_keeps_history(http_receiver: HttpReceiver, tmp_path: Path) -> None:
    config = tmp_path / "notify.yaml"
    config.write_text(CONFIG.replace("URL", http_receiver.url), encoding="utf-8")
    db = tmp_path / "notify.db"
    notifier = BackgroundNotifier(NotificationPipeline.from_config(config, db, ManualClock(T0))).start()
    notifier(_alert())
    notifier.stop()  # runs a last flush: what is due is delivered before the pipeline closes
    (got,) = http_receiver.received
    assert got.path == "/hook" and [a["labels"]["market"] for a in got.body["alerts"]] == ["BR"]
    with NotificationPipeline.from_config(config, db, ManualClock(T0), dry_run=True) as again:
        assert [(e.state, e.labels["market"]) for e in again.history.entries()] == [("firing", "BR")]


@pytest.mark.integration
def test_on_alert_method_sends_at_once_when_nothing_waits(http_receiver: HttpReceiver, tmp_path: Path) -> None:
    config = tmp_path / "notify.yaml"
    config.write_text(CONFIG.replace("URL", http_receiver.url), encoding="utf-8")
    clock = ManualClock(T0)
    with NotificationPipeline.from_config(config, ":memory:", clock) as pipe:
        pipe.on_alert(_alert())
        assert len(http_receiver.received) == 1
        clock.advance(seconds=300)
        pipe.on_alert(_alert("resolved"))
        assert [b.body["status"] for b in http_receiver.received] == ["firing", "resolved"]
        assert [e.state for e in pipe.history.entries()] == ["firing", "resolved"]


def test_function_clock_follows_a_compressed_clock() -> None:
    now = [1000.0]
    clock = FunctionClock(lambda: now[0], speed=120)
    now[0] += 30
    assert clock.now_ms() == 1_030_000 and clock.speed == 120
    with pytest.raises(ValueError, match="speed"):
        FunctionClock(lambda: 0.0, speed=0)
