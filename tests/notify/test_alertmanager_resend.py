"""Forwarding to a real Alertmanager keeps an alert firing as long as tunewatch does (issue 14): firing alerts
are posted again with ``endsAt`` ahead, so Alertmanager's ``resolve_timeout`` never resolves them behind our
back, and the resolution is posted when tunewatch resolves."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.notify.peers import real_alertmanager
from tunewatch.alert.model import Alert
from tunewatch.notify import BackgroundNotifier, NotificationPipeline, NotifyConfig

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RESOLVE_TIMEOUT_S = 10
FIRING_S = 40


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    with real_alertmanager(tmp_path, f"{{resolve_timeout: {RESOLVE_TIMEOUT_S}s}}") as url:
        yield url


def _state(url: str) -> dict[str, Any] | None:
    listed = httpx.get(f"{url}/api/v2/alerts", params={"filter": 'alertname="StreamsDrop"'}, timeout=5).json()
    return listed[0] if listed else None


def test_alertmanager_shows_the_alert_firing_until_tunewatch_resolves_it(alertmanager: str, tmp_path: Path) -> None:
    config = NotifyConfig.from_yaml(f"""
route: {{receiver: am, group_by: [alertname], group_wait: 0s, group_interval: 2s, repeat_interval: 4h}}
receivers: [{{name: am, alertmanager_configs: [{{url: "{alertmanager}", resend_interval: 4s}}]}}]
""")
    start = int(time.time() * 1000)
    alert = Alert({"alertname": "StreamsDrop", "market": "BR"}, {"summary": "streams down"}, "firing", start)
    notifier = BackgroundNotifier(NotificationPipeline(config, tmp_path / "n.db"), max_sleep_s=0.5).start()
    try:
        notifier(alert)
        states = []
        deadline = time.monotonic() + FIRING_S
        while time.monotonic() < deadline:  # 4 x resolve_timeout: without re-posts it would have resolved
            time.sleep(2)
            found = _state(alertmanager)
            states.append(found["status"]["state"] if found else "absent")
        assert states and set(states) == {"active"}, states
        end = int(time.time() * 1000)
        notifier(Alert(dict(alert.labels), {"summary": "streams down"}, "resolved", start, end))
        deadline = time.monotonic() + 10
        while (found := _state(alertmanager)) is not None and time.monotonic() < deadline:
            if found["status"]["state"] != "active":
                break
            time.sleep(0.5)
        assert found is None or found["status"]["state"] != "active"  # resolved when tunewatch resolved it
    finally:
        notifier.stop()
