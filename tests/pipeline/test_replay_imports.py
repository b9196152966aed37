"""Replay's start-up imports only what replay runs: not the service, notifier, cache or command line layers."""

from __future__ import annotations

import json
import subprocess
import sys

#: packages a replay never runs; importing any of them would only add to every replay's fixed start-up cost
NOT_FOR_REPLAY = (
    "tunewatch.cache",
    "tunewatch.cli",
    "tunewatch.distributed",
    "tunewatch.evaluate",
    "tunewatch.monitor",
    "tunewatch.notify",
    "tunewatch.quarantine",
    "tunewatch.security",
    "tunewatch.server",
    "tunewatch.simulate",
    "fastapi",
    "httpx",
    "prometheus_client",
    "redis",
    "rich",
    "starlette",
    "typer",
    "uvicorn",
)

_PROBE = """
import json, sys
import tunewatch.pipeline.replay_job
print(json.dumps(sorted(sys.modules)))
"""


def test_the_replay_library_path_imports_none_of_the_other_layers() -> None:
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=120)
    loaded = json.loads(done.stdout)
    assert "tunewatch.pipeline.replay" in loaded  # the probe saw the replay modules themselves
    unwanted = sorted(m for m in loaded if any(m == p or m.startswith(p + ".") for p in NOT_FOR_REPLAY))
    assert unwanted == []
