"""Durability: the service as a real process, SIGKILLed after ingest, restarted on the same database."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.rules import plays_seen_rules
from tests.server.servers import free_port, wait_http
from tunewatch.security import ApiKeyStore
from tunewatch.store.sqlite import connect

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RULES = plays_seen_rules()
JSON = {"content-type": "application/json"}


@contextlib.contextmanager
def service_process(env: dict[str, str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    cmd = [sys.executable, "-m", "uvicorn", "tunewatch.server.entry:app_from_env", "--factory",
           "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-proxy-headers"]  # fmt: skip
    proc = subprocess.Popen(cmd, env={**os.environ, **env})
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", timeout_s=30)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def test_alerts_silences_and_keys_survive_sigkill(tmp_path: Path, play: Callable[..., dict[str, Any]]) -> None:
    db = tmp_path / "tunewatch.db"
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    key, _ = ApiKeyStore(connect(db)).create("ops", {"admin"}, now_ms=0)
    env = {"TUNEWATCH_DB": str(db), "TUNEWATCH_RULES": str(rules), "TUNEWATCH_AUTH": "1"}
    headers = {"X-API-Key": key}
    now_ms = int(time.time() * 1000) // 60_000 * 60_000
    events = [play(i, now_ms - 10 * 60_000 + i * 1000) for i in range(8 * 60)]  # 8 minutes, closing ~5 windows

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with service_process(env, port) as proc:
        r = httpx.post(
            base + "/api/v1/events", content=json.dumps(events), headers={**headers, **JSON}, timeout=30
        )
        assert r.json()["accepted"] == len(events)
        before = httpx.get(base + "/api/v1/alerts", headers=headers).json()
        assert {a["labels"].get("market") for a in before} == {None, "BR"}
        silence = httpx.post(
            base + "/api/v1/silences", json={"matchers": ["market=BR"], "comment": "restart test"}, headers=headers
        ).json()
        history = httpx.get(base + "/api/v1/alerts?state=history", headers=headers).json()
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with service_process(env, port):
        after = httpx.get(base + "/api/v1/alerts", headers=headers).json()  # the key survived too
        assert sorted(a["fingerprint"] for a in after) == sorted(a["fingerprint"] for a in before)
        assert {a["labels"].get("market"): a["silencedBy"] for a in after} == {"BR": [silence["id"]], None: []}
        assert httpx.get(base + "/api/v1/alerts?state=history", headers=headers).json() == history
        silences = httpx.get(base + "/api/v1/silences", headers=headers).json()
        assert [(s["id"], s["state"], s["comment"]) for s in silences] == [(silence["id"], "active", "restart test")]
