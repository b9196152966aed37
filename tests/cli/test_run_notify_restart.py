"""``tunewatch run`` keeps its notification schedule in wall-clock time, so it survives a restart.

Before, the notification pipeline ran on the run's compressed simulated clock: the instants it stored (group
flushes, sends) were hours ahead of the wall clock, and a restart on the same ``--notify-db`` — whose simulated
clock starts again near now — held queued notifications back for about as long as the first run had lasted.
Two real runs against a real webhook receiver on loopback.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.notify.peers import HttpReceiver

pytestmark = [pytest.mark.slow, pytest.mark.integration]

CONFIG = """
route: {receiver: hook, group_by: [alertname], group_wait: 0s, group_interval: 2s, repeat_interval: 1h}
receivers:
  - name: hook
    webhook_configs: [{url: "URL/hook"}]
"""


def _run(config: Path, db: Path, seconds: float, home: Path) -> tuple[float, float]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TUNEWATCH_HOME": str(home)}
    cmd = [sys.executable, "-m", "tunewatch.cli.main", "run", "--no-http", "--speed", "6", "--duration", str(seconds),
           "--notify-config", str(config), "--notify-db", str(db)]  # fmt: skip
    started = time.time()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "FIRING" in done.stdout and "sim 20" in done.stdout  # alert lines carry their simulated time
    return started, time.time()


def test_notifications_keep_wall_time_across_a_restart(http_receiver: HttpReceiver, tmp_path: Path) -> None:
    config = tmp_path / "notify.yaml"
    config.write_text(CONFIG.replace("URL", http_receiver.url), encoding="utf-8")
    db = tmp_path / "notify.db"

    first_start, first_end = _run(config, db, 20, tmp_path / "home")
    first = len(http_receiver.received)  # (on a busy machine the first sends may still be queued when it stops)
    with sqlite3.connect(db) as conn:
        stored = [r[0] for r in conn.execute("SELECT created_ms FROM outbox")]
        stored += [r[0] for r in conn.execute("SELECT ts_ms FROM nflog")]
    assert stored and all(first_start * 1000 - 1000 <= t <= first_end * 1000 + 1000 for t in stored), (
        f"instants stored outside the run's wall-clock span: {sorted(stored)[:3]}…{sorted(stored)[-3:]}"
    )

    second_start, second_end = _run(config, db, 15, tmp_path / "home")
    assert len(http_receiver.received) > first, "nothing was delivered after the restart: the schedule was held back"
    with sqlite3.connect(db) as conn:
        sent = [r[0] for r in conn.execute("SELECT ts_ms FROM nflog")]
    assert any(t >= second_start * 1000 for t in sent)  # sends of the second run, recorded in wall time
    assert max(sent) <= second_end * 1000 + 1000
