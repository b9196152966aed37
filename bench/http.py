"""HTTP ingest benchmark: single-event POSTs (req/s, p50/p95/p99 latency) and 1,000-event batches (events/s),
against a bare Starlette JSON endpoint measured in the same run with the same server settings.

Usage: python bench/http.py [--seconds 10] [--connections 64] [--latency-connections 8] [--batch-connections 4]
       [--loadgen auto|wrk|python]
       [--no-auth]

Starts ``tunewatch.server`` with production settings on loopback (uvicorn, one worker, httptools, uvloop when
installed, no access log, no proxy-headers middleware, a fresh SQLite database, default rate limits, API keys
required unless ``--no-auth``: every request carries an ``ingest`` key) and drives it for a bounded time with
``wrk`` (Debian package ``wrk``) when installed, else with an asyncio httpx load generator in a separate process.
Every event has a unique id and a current timestamp, so all are accepted and run through the whole pipeline. The
peer, ``bench/starlette_peer.py`` (decode the JSON body, answer a small JSON object), is served the same way and
driven with the same load. Each scenario also reports the server's CPU time per request, steadier than its rate
when other work shares the cores, split by thread (Linux): the event loop, the other Python threads (the ingest
worker's pipeline steps, the WAL writer) and Polars' pools.
Targets (issue 17, 2 cores): single-event ingest with keys on >= 50 % of the peer's req/s with p99 < 10 ms;
>= 300,000 events/s in 1,000-event batches.
"""

from __future__ import annotations

import os
import sys

# This file is named http.py: drop its own directory from the path so that `import http` finds the stdlib.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import httpx  # noqa: E402

EVENT = {
    "event_type": "play", "user_id": "u1", "market": "BR", "platform": "android", "tier": "premium",
    "cdn": "edge-1", "source": "playlist", "track_id": "t1", "artist_id": "a1", "ms_played": 60000,
    "track_duration_ms": 200000, "reason_end": "trackdone", "startup_ms": 300, "bitrate_kbps": 320,
}  # fmt: skip

WRK_SCRIPT = r"""
local counter = 0
local next_tid = 0
function setup(thread) thread:set("tid", next_tid); next_tid = next_tid + 1 end
function init(args)
  prefix = args[1] .. "-" .. tostring(tid)
  local f = assert(io.open(args[2], "rb"))
  local template = f:read("*a")
  f:close()
  -- the template split once at its placeholders: a body is then one table.concat with the request's id as the
  -- separator (a C call), not a pattern substitution over the whole template per request
  pieces = {}
  local from = 1
  while true do
    local s, e = template:find("@ID@", from, true)
    if s == nil then break end
    pieces[#pieces + 1] = template:sub(from, s - 1)
    from = e + 1
  end
  pieces[#pieces + 1] = template:sub(from)
  headers = {["Content-Type"] = "application/json"}
  if args[3] ~= nil and args[3] ~= "" then headers["Authorization"] = "Bearer " .. args[3] end
end
function request()
  counter = counter + 1
  return wrk.format("POST", "/api/v1/events", headers, table.concat(pieces, prefix .. "-" .. counter))
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(95), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""


#: a load generator: (base URL, body template, seconds, connections, tag, key) -> results
Drive = Callable[[str, str, float, int, str, str], dict[str, float]]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _template(n: int, ts: int) -> str:
    """A JSON array of ``n`` events whose ids contain the placeholder ``@ID@``."""
    events = [{"event_id": f"@ID@-{i}", "ts": ts, **EVENT} for i in range(n)]
    return json.dumps(events, separators=(",", ":"))


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds so far of a process's threads, by part: ``loop`` (the main thread: uvicorn's event loop and the
    HTTP handlers), ``python`` (the other Python threads: the ingest worker running the pipeline steps, the WAL
    writer), ``polars`` (Polars' thread pools) and ``other`` (Linux /proc; empty elsewhere)."""
    out = {"loop": 0.0, "python": 0.0, "polars": 0.0, "other": 0.0}
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return {}
    tick = os.sysconf("SC_CLK_TCK")
    for task in tasks:
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        part = ("loop" if task.name == str(pid) else "python" if name == "python"
                else "polars" if name.startswith(("polars", "async-executor", "tokio")) else "other")  # fmt: skip
        out[part] += (int(fields[11]) + int(fields[12])) / tick
    return out


def _peak_rss_mb(pid: int) -> float:
    """Peak resident memory of a running process (``VmHWM``; NaN where /proc is missing)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _uvicorn(app: str, port: int, *extra: str) -> list[str]:
    """The uvicorn command line shared by the service and its peer: the settings of ``tunewatch serve``
    (``UVICORN_PRODUCTION``: httptools, uvloop, no access log, no proxy-headers middleware: the app applies proxy
    headers itself)."""
    cmd = [sys.executable, "-m", "uvicorn", app, *extra, "--host", "127.0.0.1", "--port", str(port),
           "--workers", "1", "--http", "httptools", "--no-access-log", "--log-level", "warning",
           "--no-proxy-headers"]  # fmt: skip
    if importlib.util.find_spec("uvloop") is not None:
        cmd += ["--loop", "uvloop"]
    return cmd


def _ingest_key(db: Path) -> str:
    """A fresh ``ingest`` API key in the database ``db`` (created as ``tunewatch keys create`` does)."""
    import sqlite3

    from tunewatch.security.keys import ApiKeyStore

    conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    try:
        key, _ = ApiKeyStore(conn).create("bench", {"ingest"}, now_ms=int(time.time() * 1000))
    finally:
        conn.close()
    return key


@contextlib.contextmanager
def peer(port: int) -> Iterator[tuple[str, int]]:
    """The bare Starlette JSON endpoint (``bench/starlette_peer.py``) on loopback: its base URL and process id."""
    cmd = _uvicorn("starlette_peer:app", port, "--app-dir", os.path.dirname(os.path.abspath(__file__)))
    with _running(cmd, dict(os.environ), f"http://127.0.0.1:{port}", "/api/v1/events") as found:
        yield found


@contextlib.contextmanager
def server(port: int, *, auth: bool = True) -> Iterator[tuple[str, int, str]]:
    """The service as a production process on loopback: its base URL, process id and an ingest key ("" without
    auth)."""
    tmp = Path(tempfile.mkdtemp(prefix="tw-bench-http-"))
    db = tmp / "tunewatch.db"
    key = _ingest_key(db) if auth else ""
    cmd = _uvicorn("tunewatch.server.entry:app_from_env", port, "--factory")
    env = {**os.environ, "TUNEWATCH_DB": str(db), "TUNEWATCH_AUTH": "1" if auth else "0"}
    try:
        with _running(cmd, env, f"http://127.0.0.1:{port}", "/healthz") as (base, pid):
            yield base, pid, key
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def _running(cmd: list[str], env: dict[str, str], base: str, probe: str) -> Iterator[tuple[str, int]]:
    """Start ``cmd``, wait until ``base + probe`` answers, yield the base URL and process id, stop it."""
    proc = subprocess.Popen(cmd, env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(base + probe, timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.1)
        yield base, proc.pid
    finally:
        proc.terminate()
        proc.wait(20)


def run_wrk(base: str, template: str, seconds: float, connections: int, tag: str, key: str = "") -> dict[str, float]:
    """Drive ``base`` with wrk (one thread); return req/s, latency percentiles (ms) and errors."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK_SCRIPT)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as body:
        body.write(template)
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, int(seconds))}s", "--timeout", "10s", "-s", f.name,
           base + "/api/v1/events", "--", tag, body.name, key]  # fmt: skip
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(f.name)
        os.unlink(body.name)
    fields = next(line for line in out.splitlines() if line.startswith("RESULT")).split()[1:]
    requests, duration_us, p50, p95, p99, errors = (int(x) for x in fields)
    return {"rps": requests / (duration_us / 1e6), "p50": p50 / 1000, "p95": p95 / 1000, "p99": p99 / 1000,
            "errors": errors, "requests": requests}  # fmt: skip


async def _python_load(
    base: str, template: str, seconds: float, connections: int, tag: str, key: str = ""
) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    headers = {"content-type": "application/json"}
    if key:
        headers["authorization"] = f"Bearer {key}"

    async def worker(client: httpx.AsyncClient, wid: int) -> None:
        nonlocal errors
        n = 0
        while time.perf_counter() < stop:
            n += 1
            body = template.replace("@ID@", f"{tag}-{wid}-{n}")
            t0 = time.perf_counter()
            try:
                r = await client.post("/api/v1/events", content=body, headers=headers)
                errors += r.status_code != 200
            except httpx.HTTPError:
                errors += 1
            latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        await asyncio.gather(*(worker(client, i) for i in range(connections)))
    elapsed = time.perf_counter() - start
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [latencies[0] if latencies else 0.0] * 99
    return {"rps": len(latencies) / elapsed, "p50": q[49] * 1000, "p95": q[94] * 1000, "p99": q[98] * 1000,
            "errors": errors, "requests": len(latencies)}  # fmt: skip


def run_python(base: str, template: str, seconds: float, connections: int, tag: str, key: str = "") -> dict[str, float]:
    """Drive ``base`` with the asyncio httpx generator in a separate process (so it does not share a GIL)."""
    code = (
        "import asyncio, json, sys; sys.path.insert(0, sys.argv[1]); import http_bench_load as m; "
        "args = json.loads(open(sys.argv[2]).read()); print(json.dumps(asyncio.run(m._python_load(*args))))"
    )
    with tempfile.TemporaryDirectory() as d:
        shutil.copy(__file__, Path(d) / "http_bench_load.py")
        args = Path(d) / "args.json"
        args.write_text(json.dumps([base, template, seconds, connections, tag, key]))
        out = subprocess.run([sys.executable, "-c", code, d, str(args)], capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _line(what: str, r: dict[str, float], per: int = 1) -> str:
    rate = f"{r['rps'] * per:>10,.0f} events/s ({r['rps']:,.0f} req/s)" if per > 1 else f"{r['rps']:>10,.0f} req/s"
    cpu = f"{r['cpu_us'] / per:.1f} us/event" if per > 1 else f"{r['cpu_us']:.0f} us/request"
    parts = [p for p in ("loop", "python", "polars", "other") if r.get(f"cpu_{p}_us", 0.0) > 0]
    split = (" (" + ", ".join(f"{p} {r[f'cpu_{p}_us'] / per:.1f}" for p in parts) + ")") if parts else ""
    return (
        f"{what:<36}: {rate}   p50 {r['p50']:.1f} ms   p95 {r['p95']:.1f} ms   p99 {r['p99']:.1f} ms"
        f"   errors {r['errors']:.0f}   server CPU {cpu}{split}"
    )


def _scenarios(drive: Drive, base: str, pid: int, plan: list[tuple[str, str, int]], seconds: float, key: str = "") \
        -> dict[str, dict[str, float]]:  # fmt: skip
    """Run each ``(tag, body template, connections)`` of ``plan`` in turn; each result with the server's CPU time
    per request (``cpu_us``: steadier than req/s when other work shares the cores)."""
    out: dict[str, dict[str, float]] = {}
    for tag, template, connections in plan:
        cpu0, parts0 = _cpu_seconds(pid), _thread_cpu(pid)
        result = drive(base, template, seconds, connections, tag, key)
        requests = max(1, result["requests"])
        result["cpu_us"] = (_cpu_seconds(pid) - cpu0) / requests * 1e6
        for part, cpu in _thread_cpu(pid).items():
            result[f"cpu_{part}_us"] = (cpu - parts0.get(part, 0.0)) / requests * 1e6
        out[tag] = result
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each scenario")
    parser.add_argument("--connections", type=int, default=64, help="concurrent connections, single-event POSTs")
    parser.add_argument("--latency-connections", type=int, default=8,
                        help="concurrent connections of the single-event latency scenario (0: skip it)")  # fmt: skip
    parser.add_argument("--batch-connections", type=int, default=4, help="concurrent connections, batches")
    parser.add_argument("--batch", type=int, default=1000, help="events per batch")
    parser.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--no-auth", action="store_true", help="serve without API keys (default: keys required)")
    args = parser.parse_args()
    use_wrk = args.loadgen == "wrk" or (args.loadgen == "auto" and shutil.which("wrk") is not None)
    drive: Drive = run_wrk if use_wrk else run_python
    ts = int(time.time() * 1000) - 30_000
    auth = not args.no_auth
    print(f"load generator: {'wrk' if use_wrk else 'python asyncio httpx'}; {os.cpu_count()} cores; "
          f"{args.seconds:g} s per scenario; API keys {'on' if auth else 'off'}; "
          f"load average {os.getloadavg()[0]:.1f} at the start")  # fmt: skip
    one, many = _template(1, ts), _template(args.batch, ts)
    plan = [("s", one, args.connections), ("b", many, args.batch_connections)]
    if args.latency_connections:
        plan.insert(1, ("l", one, args.latency_connections))
    with peer(_free_port()) as (peer_base, peer_pid):
        drive(peer_base, one, 2, 8, "warm", "")
        theirs = _scenarios(drive, peer_base, peer_pid, plan, args.seconds)
    with server(_free_port(), auth=auth) as (base, pid, key):
        drive(base, one, 2, 8, "warm", key)  # warm-up (imports, first windows)
        ours = _scenarios(drive, base, pid, plan, args.seconds, key)
        peak = _peak_rss_mb(pid)
        status = httpx.get(base + "/healthz").json()
    names = {"s": f"1 event, {args.connections} conn.", "l": f"1 event, {args.latency_connections} conn.",
             "b": f"{args.batch:,} events, {args.batch_connections} conn."}  # fmt: skip
    for tag, _, _ in plan:
        per = args.batch if tag == "b" else 1
        print(_line(f"peer: {names[tag]}", theirs[tag], per))
        print(_line(f"tunewatch: {names[tag]}", ours[tag], per))
    single, batched = ours["s"], ours["b"]
    latency = ours.get("l", single)
    print(
        f"single-event / peer: {single['rps'] / theirs['s']['rps']:.2f}x the requests/s, "
        f"{theirs['s']['cpu_us'] / single['cpu_us']:.2f}x the CPU per request (target >= 0.50); "
        f"p99 {latency['p99']:.1f} ms at {args.latency_connections or args.connections} connections "
        f"(target < 10 ms; peer {theirs.get('l', theirs['s'])['p99']:.1f} ms)"
    )
    print(
        f"batch: {batched['rps'] * args.batch:,.0f} events/s (target >= 300,000; "
        f"{batched['rps'] / theirs['b']['rps']:.2f}x the peer's requests/s, "
        f"{theirs['b']['cpu_us'] / batched['cpu_us']:.2f}x its CPU per request); "
        f"peak memory (service) {peak:,.0f} MB; load average {os.getloadavg()[0]:.1f} at the end"
    )
    print(f"server accounting: {status['received']:,} received, {status['accepted']:,} accepted, "
          f"{status['rejected']:,} rejected, {status['duplicates']:,} duplicates")  # fmt: skip


if __name__ == "__main__":
    main()
