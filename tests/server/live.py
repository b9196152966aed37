"""A real ``tunewatch serve`` process on loopback for the hardening tests (issue 14)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.server.servers import free_port, wait_http

JSON = {"content-type": "application/json"}
NDJSON = {"content-type": "application/x-ndjson"}


@dataclass
class Served:
    """A running service: its base URL, process and database."""

    base: str
    proc: subprocess.Popen[bytes]
    db: Path

    def rss_mb(self) -> float:
        """Resident memory of the server process."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")


@contextlib.contextmanager
def serve(
    tmp: Path, env: dict[str, str] | None = None, args: tuple[str, ...] = (), db: Path | None = None
) -> Iterator[Served]:
    """``tunewatch serve`` (the real CLI) on a free loopback port with a database in ``tmp``."""
    port = free_port()
    database = db or tmp / "tw.db"
    cmd = [str(Path(sys.executable).with_name("tunewatch")), "serve", "--port", str(port), "--db", str(database), *args]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TUNEWATCH_")}
    proc = subprocess.Popen(cmd, env={**clean, **(env or {})}, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/healthz", timeout_s=60)
        yield Served(base, proc, database)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

