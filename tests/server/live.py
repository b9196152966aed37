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
from tunewatch.home import default_db as default_db_path

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


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any ``TUNEWATCH_*`` setting, plus ``extra``."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("TUNEWATCH_")}, **extra}


def tunewatch_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the real ``tunewatch`` CLI with ``env``; its exit code, stdout and stderr as text."""
    return subprocess.run([sys.executable, "-m", "tunewatch.cli.main", *args], env=env, capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip


@contextlib.contextmanager
def serve(
    tmp: Path,
    env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
    db: Path | None = None,
    *,
    default_db: bool = False,
) -> Iterator[Served]:
    """``tunewatch serve`` (the real CLI) on a free loopback port, in ``tmp``, with a database in ``tmp`` — or,
    with ``default_db``, on its default database under ``env["TUNEWATCH_HOME"]`` (no ``--db``)."""
    port = free_port()
    if default_db:
        database = default_db_path(clean_env(**(env or {})))
        where: list[str] = []
    else:
        database = db or tmp / "tw.db"
        where = ["--db", str(database)]
    cmd = [str(Path(sys.executable).with_name("tunewatch")), "serve", "--port", str(port), *where, *args]
    proc = subprocess.Popen(cmd, env=clean_env(**(env or {})), cwd=tmp, stdout=subprocess.DEVNULL)
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
