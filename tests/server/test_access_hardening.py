"""Access hardening (issue 14), against a real ``tunewatch serve`` on loopback: Host allow-list, Origin check,
ingest content types, proxy trust, fast and uniform key checks, failed-authentication limits, HTTP revocation,
range-checked parameters, NaN/Infinity refused, bounded silences, files 0600, audited admin actions."""

from __future__ import annotations

import hashlib
import os
import secrets
import sqlite3
import stat
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.live import JSON, Served, serve
from tunewatch.security import ApiKeyStore
from tunewatch.security.audit import AuditLog, audit_keyring
from tunewatch.store.sqlite import connect

pytestmark = pytest.mark.integration

Play = Callable[..., dict[str, Any]]


@pytest.fixture(scope="module")
def open_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve(tmp_path_factory.mktemp("open")) as s:
        yield s


def test_dns_rebinding_hosts_are_refused(open_service: Served) -> None:
    base = open_service.base
    assert httpx.get(base + "/api/v1/quarantine").status_code == 200
    assert httpx.get(base + "/api/v1/quarantine", headers={"Host": f"localhost:{base.rsplit(':', 1)[1]}"}).is_success
    for host in ("attacker.example", "attacker.example:8787", "127.0.0.1.nip.io"):
        r = httpx.get(base + "/api/v1/quarantine", headers={"Host": host})
        assert r.status_code == 400 and "not served here" in r.json()["detail"]
        r = httpx.post(base + "/api/v1/silences", json={"matchers": ["a=b"], "comment": "x"}, headers={"Host": host})
        assert r.status_code == 400
    assert httpx.get(base + "/api/v1/silences").json() == []


def test_cross_site_writes_are_refused_and_same_origin_passes(open_service: Served, play: Play) -> None:
    base = open_service.base
    event = f'[{{"event_id": "x{secrets.token_hex(4)}"}}]'
    for origin in ("https://evil.example", "null", base.replace("127.0.0.1", "localhost") + "1"):
        r = httpx.post(base + "/api/v1/events", content=event, headers={**JSON, "Origin": origin})
        assert r.status_code == 403 and "cross-origin" in r.json()["detail"]
        r = httpx.post(
            base + "/api/v1/silences", json={"matchers": ["a=b"], "comment": "x"}, headers={"Origin": origin}
        )
        assert r.status_code == 403
    r = httpx.post(base + "/api/v1/silences", json={"matchers": ["a=b"], "comment": "x"}, headers={"Origin": base})
    assert r.status_code == 201
    r = httpx.delete(base + f"/api/v1/silences/{r.json()['id']}", headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403
    # simple cross-site requests (no preflight) carry text/plain or form types, or none: ingest refuses them
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None):
        headers = {"content-type": content_type} if content_type else {}
        r = httpx.post(base + "/api/v1/events", content=event, headers=headers)
        assert r.status_code == 415, content_type
    assert httpx.get(base + "/healthz").json()["received"] == 0


def test_forwarded_for_is_trusted_only_from_configured_proxies(tmp_path: Path) -> None:
    env = {"TUNEWATCH_RATE_LIMIT_PER_ADDRESS": "5/hour"}  # an hour: no test run is that slow, however loaded
    (tmp_path / "a").mkdir()
    with serve(tmp_path / "a", env) as s:
        codes = [
            httpx.get(s.base + "/api/v1/alerts", headers={"X-Forwarded-For": f"10.0.0.{i}"}).status_code
            for i in range(20)
        ]
        assert codes == [200] * 5 + [429] * 15  # all from 127.0.0.1, whatever the header says
    (tmp_path / "b").mkdir()
    with serve(tmp_path / "b", env, args=("--forwarded-allow-ips", "127.0.0.1")) as s:
        codes = [
            httpx.get(s.base + "/api/v1/alerts", headers={"X-Forwarded-For": f"10.0.0.{i}"}).status_code
            for i in range(20)
        ]
        assert codes == [200] * 20  # behind a trusted proxy, each client counts on its own


def test_out_of_range_parameters_and_nan_get_4xx_never_5xx(open_service: Served) -> None:
    base = open_service.base
    with httpx.Client(base_url=base) as client:  # one keep-alive connection: it must survive every answer
        for query in ("since=99999999999999999999", "since=-99999999999999", "until=1e400", "since=NaN"):
            r = client.get(f"/api/v1/history/plays?{query}")
            assert 400 <= r.status_code < 500, (query, r.status_code)
        for raw in (b'{"matchers": ["a=b"], "comment": "x", "duration": NaN}',
                    b'{"matchers": ["a=b"], "comment": "x", "starts_at": Infinity}',
                    b'{"matchers": ["a=b"], "comment": "x", "duration": -Infinity}'):  # fmt: skip
            r = client.post("/api/v1/silences", content=raw, headers=JSON)
            assert r.status_code == 422 and "NaN and Infinity" in r.json()["detail"]
        for query in ("seconds=nan", "seconds=inf", "seconds=1e999"):
            r = client.get(f"/api/v1/admin/profile?{query}")
            assert r.status_code == 422
        r = client.get("/api/v1/series?limit=99999999999999999999999")
        assert r.status_code == 422
        assert client.get("/healthz").status_code == 200


def test_silences_are_bounded(open_service: Served) -> None:
    base = open_service.base
    for body in ({"duration": "31d"}, {"ends_at": "9999-12-31T00:00:00Z"},
                 {"starts_at": "9999-12-31T23:00:00Z", "duration": "1h"}, {"duration": "99999999999999d"}):  # fmt: skip
        r = httpx.post(base + "/api/v1/silences", json={"matchers": ["a=b"], "comment": "x", **body})
        assert r.status_code in (400, 422), (body, r.status_code, r.text)
    r = httpx.post(base + "/api/v1/silences", json={"matchers": ["a=b"], "comment": "x", "duration": "30d"})
    assert r.status_code == 201


@pytest.fixture
def auth_service(tmp_path: Path) -> Iterator[tuple[Served, str, str]]:
    db = tmp_path / "tw.db"
    store = ApiKeyStore(connect(db))
    admin, _ = store.create("ops", {"admin"}, now_ms=0)
    ingest, _ = store.create("bot", {"ingest"}, now_ms=0)
    env = {"TUNEWATCH_AUTH": "1", "TUNEWATCH_AUTH_FAILURES_PER_ADDRESS": "30/minute"}
    with serve(tmp_path, env, db=db) as s:
        yield s, admin, ingest


def _median_ms(call: Callable[[], httpx.Response], n: int = 15) -> float:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def test_key_checks_are_fast_uniform_and_failures_are_limited(auth_service: tuple[Served, str, str]) -> None:
    served, admin, _ = auth_service
    known_id = admin.split("_")[1]
    url = served.base + "/api/v1/alerts"
    with httpx.Client() as client:
        wrong_secret = _median_ms(lambda: client.get(url, headers={"X-API-Key": f"tw_{known_id}_{'A' * 43}"}))
        unknown_id = _median_ms(lambda: client.get(url, headers={"X-API-Key": f"tw_{'0' * 12}_{'A' * 43}"}))
    assert wrong_secret < 20 and unknown_id < 20  # no slow KDF on the request path (scrypt took ~146 ms)
    assert abs(wrong_secret - unknown_id) < 5
    # 30 failures in this minute: the 31st bad key is refused before it is looked at, a good key still passes
    codes = [httpx.get(url, headers={"X-API-Key": "tw_x_y"}).status_code for _ in range(5)]
    assert codes[-1] == 429 and "failed authentications" in httpx.get(url, headers={"X-API-Key": "tw_x_y"}).text
    assert httpx.get(url, headers={"X-API-Key": admin}).status_code == 429  # the address is blocked, not the key


def test_http_revoke_takes_effect_at_once_and_is_audited(auth_service: tuple[Served, str, str], play: Play) -> None:
    served, admin, ingest = auth_service
    headers = {"X-API-Key": admin}
    event = [play(1, int(time.time() * 1000) - 60_000)]
    assert httpx.post(served.base + "/api/v1/events", json=event, headers={"X-API-Key": ingest}).status_code == 200
    ingest_id = ingest.split("_")[1]
    assert httpx.delete(served.base + f"/api/v1/keys/{ingest_id}", headers={"X-API-Key": ingest}).status_code == 403
    r = httpx.delete(served.base + f"/api/v1/keys/{ingest_id}", headers=headers)
    assert r.status_code == 200 and r.json()["id"] == ingest_id
    assert httpx.post(served.base + "/api/v1/events", json=event, headers={"X-API-Key": ingest}).status_code == 401
    assert httpx.delete(served.base + f"/api/v1/keys/{ingest_id}", headers=headers).status_code == 409
    assert httpx.delete(served.base + "/api/v1/keys/nope", headers=headers).status_code == 404
    silence = httpx.post(served.base + "/api/v1/silences", json={"matchers": ["a=b"], "comment": "x"}, headers=headers)
    httpx.delete(served.base + f"/api/v1/silences/{silence.json()['id']}", headers=headers)
    httpx.post(served.base + "/api/v1/rules/reload", headers=headers)
    with AuditLog(served.db, audit_keyring(served.db)) as log:
        entries = log.entries()
        assert [e.action for e in entries] == ["api_key.revoke", "silence.create", "silence.expire", "rules.reload"]
        assert all(e.actor.startswith("api-key:") and "ops" in e.actor for e in entries)
        assert log.verify().ok


def test_legacy_scrypt_keys_keep_working_and_are_rehashed(tmp_path: Path) -> None:
    db = tmp_path / "tw.db"
    store = ApiKeyStore(connect(db))
    conn = sqlite3.connect(db)
    salt, secret = os.urandom(16), secrets.token_urlsafe(32)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32, maxmem=64 * 1024 * 1024)
    conn.execute(
        "INSERT INTO api_keys (id, name, scopes, salt, hash, created_ms, scheme) VALUES (?, ?, ?, ?, ?, ?, ?)",
        ("0123456789ab", "old", "read", salt, digest, 0, "scrypt"),
    )
    conn.commit()
    assert store.legacy_count() == 1
    with serve(tmp_path, {"TUNEWATCH_AUTH": "1"}, db=db) as s:
        key = f"tw_0123456789ab_{secret}"
        assert httpx.get(s.base + "/api/v1/alerts", headers={"X-API-Key": key}).status_code == 200
        assert store.legacy_count() == 0  # re-hashed with the HMAC at its first use
        assert httpx.get(s.base + "/api/v1/alerts", headers={"X-API-Key": key}).status_code == 200
        assert httpx.get(s.base + "/api/v1/alerts", headers={"X-API-Key": key + "x"}).status_code == 401
    conn.close()


def test_database_and_state_files_are_private(tmp_path: Path, play: Play) -> None:
    with serve(tmp_path) as s:
        events = [play(i, int(time.time() * 1000) - 60_000) for i in range(20)] + [{"bad": 1}]
        httpx.post(s.base + "/api/v1/events", json=events)
        httpx.post(s.base + "/api/v1/silences", json={"matchers": ["a=b"], "comment": "x"})
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"tw.db", "tw.db.secret"} <= names
    loose = {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in files if p.stat().st_mode & 0o077}
    assert loose == {}


def test_wrong_keys_from_one_address_do_not_slow_down_another(
    auth_service: tuple[Served, str, str], play: Play
) -> None:
    """The scrypt DoS of issue 14: clients hammering with a real key id and wrong secrets. Their failures are
    refused before any work once over the limit; a client on another address ingests as fast as before."""
    served, _, ingest = auth_service
    known_id = ingest.split("_")[1]
    legit = httpx.Client(
        base_url=served.base, transport=httpx.HTTPTransport(local_address="127.0.0.2"), headers={"X-API-Key": ingest}
    )
    now = int(time.time() * 1000) - 60_000

    def ingest_ms(i: int) -> float:
        t0 = time.perf_counter()
        r = legit.post("/api/v1/events", json=[play(i, now, event_id=f"legit{i}")])
        assert r.status_code == 200 and r.json()["accepted"] == 1
        return (time.perf_counter() - t0) * 1000

    quiet = statistics.median(ingest_ms(i) for i in range(20))
    rss = served.rss_mb()
    stop = threading.Event()
    codes: list[int] = []

    def attacker() -> None:
        with httpx.Client(base_url=served.base) as client:
            while not stop.is_set():
                r = client.get("/api/v1/alerts", headers={"X-API-Key": f"tw_{known_id}_{secrets.token_urlsafe(32)}"})
                codes.append(r.status_code)

    threads = [threading.Thread(target=attacker) for _ in range(8)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        busy = statistics.median(ingest_ms(i) for i in range(20, 60))
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    legit.close()
    assert set(codes) == {401, 429} and codes.count(429) > codes.count(401)
    print(f"legit ingest p50: {quiet:.1f} ms quiet, {busy:.1f} ms under attack; attack answers {len(codes)}")
    assert busy < max(150.0, 10 * quiet), (quiet, busy)  # 12 ms -> 3.96 s with scrypt on the request path
    assert served.rss_mb() < rss + 100
