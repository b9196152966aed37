"""Real Redis processes for the cache tests (and the cache benchmark): one server, or a 6-node cluster."""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis

REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(bus_offset: int | None = None) -> int:
    """A free loopback port (and, with ``bus_offset``, ``port + bus_offset`` free too, for the cluster bus)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if bus_offset is None or (port + bus_offset < 65536 and _port_free(port + bus_offset)):
            return port
    raise RuntimeError("no free loopback port found")


def wait_until(predicate: object, timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll ``predicate()`` until true; fail with ``what`` after ``timeout`` seconds."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if predicate():
                return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


class RedisProcess:
    """A ``redis-server`` on a loopback port, without persistence."""

    def __init__(self, port: int | None = None, *extra: str, workdir: Path | None = None) -> None:
        if REDIS_SERVER is None:
            raise RuntimeError("redis-server not installed")
        self.port = port or free_port()
        self.extra = extra
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="tw-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """redis:// URL of the server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisProcess:
        """Start and wait until it answers PING."""
        assert REDIS_SERVER is not None
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--dir", str(self.workdir), *self.extra]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: self.client().ping(), 10, f"redis-server on port {self.port}")
        return self

    def client(self) -> redis.Redis:
        """A plain client to this server."""
        return redis.Redis(port=self.port, socket_timeout=2, socket_connect_timeout=2)

    def send(self, sig: int) -> None:
        """Send ``sig`` (e.g. SIGSTOP/SIGCONT) to the process."""
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the process (``SIGKILL`` for a crash) and wait for it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class RedisClusterProcesses:
    """Six ``redis-server --cluster-enabled yes`` processes joined as 3 masters + 3 replicas."""

    def __init__(self, node_timeout_ms: int = 1000) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="tw-cluster-"))
        self.nodes: list[RedisProcess] = []
        for i in range(6):
            workdir = self.root / str(i)
            workdir.mkdir()
            port = free_port(bus_offset=10000)
            extra = (
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                str(node_timeout_ms),
                "--cluster-replica-validity-factor",
                "0",
            )
            self.nodes.append(RedisProcess(port, *extra, workdir=workdir))

    @property
    def addresses(self) -> list[str]:
        """host:port of every node."""
        return [f"127.0.0.1:{n.port}" for n in self.nodes]

    def start(self) -> RedisClusterProcesses:
        """Start the nodes, create the cluster and wait for every node to report ``cluster_state:ok``."""
        assert REDIS_CLI is not None
        for node in self.nodes:
            node.start()
        subprocess.run(
            [REDIS_CLI, "--cluster", "create", *self.addresses, "--cluster-replicas", "1", "--cluster-yes"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )
        for node in self.nodes:
            wait_until(
                lambda n=node: b"cluster_state:ok" in n.client().execute_command("CLUSTER", "INFO"),
                30,
                f"cluster_state:ok on port {node.port}",
            )
        wait_until(self._replicas_linked, 30, "every replica linked to its master")
        return self

    def _replicas_linked(self) -> bool:
        infos = [n.client().info("replication") for n in self.nodes]
        return sum(i.get("role") == "slave" and i.get("master_link_status") == "up" for i in infos) == 3

    def masters(self) -> list[RedisProcess]:
        """Nodes that are masters now."""
        return [n for n in self.nodes if n.proc is not None and n.client().info("replication")["role"] == "master"]

    def stop(self) -> None:
        """Kill every node and remove the working directories."""
        for node in self.nodes:
            node.stop(signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)
