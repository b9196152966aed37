"""Real peers on 127.0.0.1 for notification tests: a scripted HTTP receiver, an SMTP server, Alertmanager."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class HttpReceiver:
    """An HTTP server that answers each request by a script: ``ok``, ``500``, ``400`` or ``hang``.

    Only requests it answered 2xx are *accepted* (``received``); a ``hang`` waits ``hang_s`` before reading
    the body, then drops the connection, as a stuck receiver would.
    """

    port: int = field(default_factory=free_port)
    script: deque[str] = field(default_factory=deque)
    received: list[Received] = field(default_factory=list)
    requests: int = 0
    hang_s: float = 1.0
    reply: tuple[int, bytes] = (200, b"ok")  #: status and body of an ``ok`` answer
    tls: ssl.SSLContext | None = None  #: serve HTTPS with this context
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def start(self) -> HttpReceiver:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                owner.requests += 1
                action = owner.script.popleft() if owner.script else "ok"
                if action == "hang":
                    time.sleep(owner.hang_s)
                    self.close_connection = True
                    return
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if action == "ok":
                    owner.received.append(Received(self.path, dict(self.headers.items()), json.loads(body)))
                    status, answer = owner.reply
                    self.send_response(status)
                    if status == 204:  # no body allowed
                        self.end_headers()
                        return
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                else:
                    self.send_response(int(action))
                    self.end_headers()
                    self.wfile.write(b"error")

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        if self.tls is not None:
            server.socket = self.tls.wrap_socket(server.socket, server_side=True)
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def self_signed_cert(tmp: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1/localhost and its key, written under ``tmp``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def server_tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


ALERTMANAGER = "/usr/bin/prometheus-alertmanager"


@contextlib.contextmanager
def real_alertmanager(tmp_path: Path, global_config: str = "", *, config: str | None = None,
                      external_url: str | None = None) -> Iterator[str]:  # fmt: skip
    """Debian's Alertmanager on a loopback port with a null receiver (and ``global_config`` as its ``global:``
    block, e.g. ``{resolve_timeout: 10s}``), or with the whole ``config``; yields its base URL, stops it
    afterwards. Skips without it."""
    if not shutil.which(ALERTMANAGER):
        pytest.skip("prometheus-alertmanager is not installed (Debian: apt-get install prometheus-alertmanager)")
    port = free_port()
    conf = tmp_path / "am.yml"
    head = f"global: {global_config}\n" if global_config else ""
    conf.write_text(config if config is not None else head + "route: {receiver: 'null'}\nreceivers: [{name: 'null'}]\n")
    proc = subprocess.Popen(
        [ALERTMANAGER, f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
         f"--storage.path={tmp_path / 'data'}", f"--config.file={conf}",
         *([f"--web.external-url={external_url}"] if external_url else [])],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                if httpx.get(f"{url}/-/ready", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail("alertmanager did not start")
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
