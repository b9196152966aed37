"""Real servers for the server tests: uvicorn in a thread, and a headless Chromium driven over CDP."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from websockets.sync.client import connect


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout_s: float = 60.0) -> None:
    """Poll ``url`` until it answers (server start-up)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextlib.contextmanager
def uvicorn_thread(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` on a free loopback port in a thread; yield its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/healthz")
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(10)


def chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


class Browser:
    """A headless Chromium with one page, driven by Chrome DevTools Protocol ``Runtime.evaluate``."""

    def __init__(self, binary: str) -> None:
        # Chromium's helper processes may still write into the profile while it is removed: errors are ignored
        self._dir = tempfile.TemporaryDirectory(prefix="tw-chromium-", ignore_cleanup_errors=True)
        self.proc = subprocess.Popen(
            [
                binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", f"--user-data-dir={self._dir.name}", "--remote-debugging-port=0",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: close() stops the renderers and helpers too
        )  # fmt: skip
        port_file = Path(self._dir.name) / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.close()
                raise RuntimeError("chromium did not start (no DevToolsActivePort)")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        pages: list[dict[str, Any]] = []
        while not pages:  # on a loaded machine the first page can appear after the DevTools port
            try:
                targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
                pages = [t for t in targets if t["type"] == "page"]
            except httpx.HTTPError:
                pages = []
            if not pages:
                if time.monotonic() > deadline:
                    self.close()
                    raise RuntimeError("chromium started but opened no page")
                time.sleep(0.1)
        self._ws = connect(pages[0]["webSocketDebuggerUrl"], max_size=None)
        self._ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        msg_id = next(self._ids)
        self._ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self._ws.recv(timeout=30))
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"CDP {method}: {reply['error']}")
                return dict(reply.get("result", {}))

    def evaluate(self, expression: str) -> Any:
        """Evaluate JavaScript in the page (promises awaited); return its JSON value."""
        result = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page error: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float = 15.0) -> Any:
        """Poll ``expression`` until it is truthy; return it."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"page never satisfied: {expression}")
            time.sleep(0.05)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._ws.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        with contextlib.suppress(ProcessLookupError):  # helpers that outlived the browser process
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._dir.cleanup()


def local_client(app: FastAPI) -> TestClient:
    """An in-process client that calls ``app`` as a loopback client would (Host 127.0.0.1), posting JSON."""
    return TestClient(app, base_url="http://127.0.0.1", headers={"content-type": "application/json"})
