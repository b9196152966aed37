"""One quarantine: the HTTP API and ``tunewatch quarantine`` read the same durable rows, masked the same way, and
still agree after the service restarts; reading raw personal data is audited whichever interface asked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.server.live import NDJSON, serve

BAD = [
    b'{"event_id":"q1","user_id":"alice","market":"XX"}',
    b'{"event_id":"q2","user_id":"bob","ip_addr":"10.1.2.3","platform":"toaster"}',
    b"{nope",
]


def _cli(*args: str, db: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNEWATCH_")} | {"COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "tunewatch.cli.main", *args, "--db", str(db)], env=env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


def test_api_and_cli_list_the_same_quarantine_after_a_restart(tmp_path: Path) -> None:
    with serve(tmp_path) as served:
        r = httpx.post(served.base + "/api/v1/events", content=b"\n".join(BAD) + b"\n", headers=NDJSON, timeout=30)
        assert r.status_code == 200 and r.json()["rejected"] == 3
        before = httpx.get(served.base + "/api/v1/quarantine", timeout=10).json()
    with serve(tmp_path) as served:  # restarted on the same database
        after = httpx.get(served.base + "/api/v1/quarantine", timeout=10).json()
        revealed = httpx.get(served.base + "/api/v1/quarantine", params={"reveal": "true"}, timeout=10).json()
    assert after == before and after["total"] == 3
    assert [e["request"] for e in after["events"]] == [1, 1, 1] and [e["line"] for e in after["events"]] == [3, 2, 1]
    shown = " ".join(e["raw"] for e in after["events"])
    assert "alice" not in shown and "bob" not in shown and "10.1.2.3" not in shown
    assert "alice" in " ".join(e["raw"] for e in revealed["events"])

    exported = _cli("quarantine", "export", "-", "--state", "all", db=served.db)
    assert exported.returncode == 0, exported.stderr
    records = [json.loads(line) for line in exported.stdout.splitlines()]
    assert sorted(r["quarantine_id"] for r in records) == sorted(e["id"] for e in after["events"])
    assert {r["quarantine_id"]: r["reasons"] for r in records} == {e["id"]: e["reasons"] for e in after["events"]}
    listed = _cli("quarantine", "list", "--state", "all", db=served.db)
    assert listed.returncode == 0 and "alice" not in listed.stdout and "‹redacted›" in listed.stdout

    audit = _cli("audit", "list", "--json", "--limit", "0", db=served.db)
    assert audit.returncode == 0, audit.stderr
    actions = [(e["action"], e.get("details", {}).get("via")) for e in map(json.loads, audit.stdout.splitlines())]
    assert ("quarantine.reveal", "http") in actions and ("quarantine.export", "cli") in actions
