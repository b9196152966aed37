"""`tunewatch run` (the README's first command) shows alerts within a minute, with its HTTP service up."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_run_prints_alerts_and_serves_them() -> None:
    port = _free_port()
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    cmd = [sys.executable, "-m", "tunewatch.cli.main", "run", "--port", str(port), "--speed", "6", "--duration", "20"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        seen_http = None
        deadline = time.time() + 18
        while time.time() < deadline and seen_http is None:
            time.sleep(1)
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                alerts = httpx.get(f"http://127.0.0.1:{port}/api/v1/alerts", timeout=2).json()
                metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            except httpx.HTTPError:
                continue
            if health.status_code == 200 and alerts:
                seen_http = (alerts, metrics, health.json())
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "FIRING" in out, out
    assert "scheduled incident" in out
    assert seen_http is not None, out
    alerts, metrics, health = seen_http
    assert all(a["status"] == "firing" and "alertname" in a["labels"] for a in alerts)
    # simulated times are labelled as such: on every alert (console, notifications) and in /healthz
    assert all(a["annotations"]["simulated_clock"].startswith("times are simulated") for a in alerts)
    assert health["clock"] == "simulated" and health["clock_factor"] == 360
    assert "tunewatch_events_received_total" in metrics
