"""Bounded work per request (issue 14), against a real ``tunewatch serve`` on loopback: hostile bodies are
answered within a second, before the pipeline, and memory returns to its baseline; every gzip member and zstd
frame counts; truncated bodies and trailing bytes are refused; quarantine rows are capped per request and the
rejected events per address per minute."""

from __future__ import annotations

import gzip
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgpack
import pytest
import zstandard

from tests.server.live import JSON, NDJSON, Served, serve

pytestmark = pytest.mark.integration

Play = Callable[..., dict[str, Any]]


def _now_ms() -> int:
    return int(time.time() * 1000) - 60_000


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    env = {"TUNEWATCH_MAX_QUARANTINE_PER_REQUEST": "50", "TUNEWATCH_MAX_REJECTED_PER_MINUTE": "1000000"}
    with serve(tmp_path_factory.mktemp("bounded"), env) as s:
        yield s


def _post(served: Served, body: bytes, headers: dict[str, str]) -> tuple[httpx.Response, float]:
    t0 = time.perf_counter()
    r = httpx.post(served.base + "/api/v1/events", content=body, headers=headers, timeout=30)
    return r, time.perf_counter() - t0


def test_hostile_bodies_are_refused_within_a_second_and_memory_returns(served: Served) -> None:
    httpx.get(served.base + "/healthz")
    baseline = served.rss_mb()
    zstd_lines = zstandard.ZstdCompressor(level=19).compress(b"{}\n" * 4_000_000)
    gzip_array = gzip.compress(b"[" + b",".join([b"{}"] * 1_000_000) + b"]", 9)
    msgpack_maps = msgpack.packb([{}] * 1_000_000)
    blank_lines = zstandard.ZstdCompressor(level=19).compress(b"\n" * 60_000_000)
    cases = [
        (zstd_lines, {**NDJSON, "content-encoding": "zstd"}, "lines"),
        (gzip_array, {**JSON, "content-encoding": "gzip"}, "array elements"),
        (msgpack_maps, {"content-type": "application/msgpack"}, "msgpack items"),
        (blank_lines, {**NDJSON, "content-encoding": "zstd"}, "lines"),
    ]
    assert len(zstd_lines) < 2000 and len(gzip_array) < 10_000
    for body, headers, what in cases:
        r, seconds = _post(served, body, headers)
        assert r.status_code == 413, (what, r.text)
        assert what in r.json()["detail"] and "100000" in r.json()["detail"]
        assert seconds < 1.0, (what, seconds)
    status = httpx.get(served.base + "/healthz").json()
    assert status["received"] == 0  # nothing reached the pipeline
    assert served.rss_mb() < baseline + 150


def test_every_gzip_member_and_zstd_frame_counts(served: Served, play: Play) -> None:
    def lines(prefix: str, ids: range) -> bytes:
        return "".join(json.dumps(play(i, _now_ms(), event_id=f"{prefix}{i}")) + "\n" for i in ids).encode()

    body = gzip.compress(lines("g", range(10))) + gzip.compress(lines("g", range(10, 25)))
    r, _ = _post(served, body, {**NDJSON, "content-encoding": "gzip"})
    assert r.status_code == 200 and r.json()["received"] == 25 and r.json()["accepted"] == 25
    z = zstandard.ZstdCompressor()
    body = z.compress(lines("z", range(10))) + z.compress(lines("z", range(10, 25)))
    r, _ = _post(served, body, {**NDJSON, "content-encoding": "zstd"})
    assert r.status_code == 200 and r.json()["received"] == 25 and r.json()["accepted"] == 25


@pytest.mark.parametrize(
    ("encoding", "make", "reason"),
    [
        ("zstd", lambda b: zstandard.ZstdCompressor().compress(b)[:-9], "truncated"),
        ("gzip", lambda b: gzip.compress(b)[:-5], "truncated"),
        ("gzip", lambda b: gzip.compress(b) + b"garbage", "trailing"),
        ("zstd", lambda b: zstandard.ZstdCompressor().compress(b) + b"garbage", "zstd"),
        ("br", lambda b: b, "Content-Encoding"),
    ],
)
def test_truncated_bodies_and_trailing_bytes_are_refused(
    served: Served, play: Play, encoding: str, make: Callable[[bytes], bytes], reason: str
) -> None:
    body = "".join(json.dumps(play(i, _now_ms(), event_id=f"t{encoding}{reason}{i}")) + "\n" for i in range(2000))
    before = httpx.get(served.base + "/healthz").json()["received"]
    r, _ = _post(served, make(body.encode()), {**NDJSON, "content-encoding": encoding})
    assert r.status_code in (400, 415) and reason in r.json()["detail"]
    assert httpx.get(served.base + "/healthz").json()["received"] == before  # nothing of it was ingested


def test_quarantine_rows_are_capped_per_request_with_a_summary_row(served: Served) -> None:
    r, seconds = _post(served, b'{"bad": 1}\n' * 20_000, NDJSON)
    assert r.status_code == 200 and r.json()["rejected"] == 20_000 and seconds < 5
    conn = sqlite3.connect(served.db)
    rows = conn.execute("SELECT reasons, raw FROM quarantine ORDER BY id DESC LIMIT 51").fetchall()
    total = conn.execute("SELECT COUNT(*) FROM quarantine").fetchone()[0]
    conn.close()
    summary = [r for r in rows if "quarantine_overflow" in r[0]]
    assert total <= 60 + 51 and len(summary) == 1  # 50 kept one by one, one row for the rest
    assert json.loads(summary[0][1]) == {"quarantine_overflow": 19_950, "limit_per_request": 50}
    metrics = httpx.get(served.base + "/metrics").text
    assert "tunewatch_quarantine_overflow_events_total 19950.0" in metrics


def test_rejected_events_per_address_per_minute_get_429(tmp_path: Path) -> None:
    with serve(tmp_path, {"TUNEWATCH_MAX_REJECTED_PER_MINUTE": "100"}) as s:
        first, _ = _post(s, b"{}\n" * 150, NDJSON)
        assert first.status_code == 200 and first.json()["rejected"] == 150
        second, seconds = _post(s, b"{}\n" * 10, NDJSON)
        assert second.status_code == 429 and seconds < 1
        assert "rejected events" in second.json()["detail"] and 1 <= int(second.headers["retry-after"]) <= 60
        assert httpx.get(s.base + "/healthz").json()["received"] == 150


def test_every_endpoint_has_a_body_limit(served: Served) -> None:
    t0 = time.perf_counter()
    big = {"matchers": ["a=b"], "comment": "x" * (2 * 1024 * 1024)}
    r = httpx.post(served.base + "/api/v1/silences", json=big, timeout=30)
    assert r.status_code == 413 and time.perf_counter() - t0 < 1
    chunks = (b"x" * 65536 for _ in range(64))  # 4 MiB, chunked: no Content-Length to refuse up front
    r = httpx.post(served.base + "/api/v1/rules/reload", content=chunks, headers=JSON, timeout=30)
    assert r.status_code == 413
