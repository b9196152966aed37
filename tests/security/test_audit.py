"""Audit trail: hash chain in a real SQLite file, tampering by raw SQL, rotation, threads, the CLI."""

from __future__ import annotations

import base64
import itertools
import json
import logging
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from tests.conftest import BASE_MS
from tunewatch.cli.main import app
from tunewatch.security.audit import GENESIS, AuditError, AuditLog
from tunewatch.security.keyring import ENV_KEY, ENV_KEY_FILE, Keyring

N_ENTRIES = 6
runner = CliRunner()


class Clock:
    """A simulated clock: one minute per reading."""

    def __init__(self, start_ms: int = BASE_MS) -> None:
        self.now_ms = start_ms

    def __call__(self) -> int:
        self.now_ms += 60_000
        return self.now_ms


@pytest.fixture
def material() -> bytes:
    return secrets.token_bytes(32)


@pytest.fixture
def ring(material: bytes) -> Keyring:
    return Keyring([("k1", material)])


@pytest.fixture
def db(tmp_path: Path, ring: Keyring) -> Path:
    """A trail of six entries in a real database file."""
    path = tmp_path / "tunewatch.db"
    with AuditLog(path, ring, clock=Clock()) as log:
        for i in range(1, N_ENTRIES + 1):
            log.record("ops" if i % 2 else "ci", "silence.add", f"silence/{i}", matchers=[f"market=M{i}"], n=i)
    return path


@pytest.fixture
def raw(db: Path) -> Iterator[sqlite3.Connection]:
    """A plain connection to the file, as an attacker would use, with the append-only triggers dropped."""
    conn = sqlite3.connect(db, isolation_level=None)
    for trigger in ("audit_log_no_update", "audit_log_no_delete", "audit_head_no_delete"):
        conn.execute(f"DROP TRIGGER {trigger}")
    yield conn
    conn.close()


def verify(db: Path, ring: Keyring) -> tuple[int | None, str]:
    with AuditLog(db, ring) as log:
        result = log.verify()
    assert result.ok is (result.first_bad_id is None)
    return result.first_bad_id, result.reason or ""


def test_entries_are_chained(db: Path, ring: Keyring) -> None:
    with AuditLog(db, ring) as log:
        entries = log.entries()
        result = log.verify()
    assert [e.id for e in entries] == list(range(1, N_ENTRIES + 1))
    assert entries[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))
    assert entries[2].details == '{"matchers":["market=M3"],"n":3}' and entries[2].details_dict["n"] == 3
    assert entries[0].ts_ms == BASE_MS + 60_000 and entries[0].kid == "k1"
    assert result.ok and result.checked == N_ENTRIES and result.head_id == N_ENTRIES
    assert result.head_hash == entries[-1].hash


def test_listing_filters(db: Path) -> None:
    with AuditLog(db) as log:  # no keyring needed to read
        assert [e.id for e in log.entries(actor="ci")] == [2, 4, 6]
        assert [e.id for e in log.entries(since_ms=BASE_MS + 4 * 60_000)] == [4, 5, 6]
        assert [e.id for e in log.entries(limit=2)] == [5, 6]
        assert log.entries(action="rules.reload") == []
        with pytest.raises(AuditError, match="without the data keyring"):
            log.verify()
        with pytest.raises(AuditError, match="without the data keyring"):
            log.record("ops", "x")


def test_triggers_refuse_update_and_delete(db: Path) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE audit_log SET actor = 'eve' WHERE id = 2")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM audit_log WHERE id = 6")
    with pytest.raises(sqlite3.DatabaseError, match="cannot be deleted"):
        conn.execute("DELETE FROM audit_head")
    conn.close()


COLS = "ts_ms, actor, action, target, details, kid, prev_hash, hash"
TAMPERING: dict[str, tuple[list[str], int, str]] = {
    "edit actor": (["UPDATE audit_log SET actor = 'eve' WHERE id = 3"], 3, "edited"),
    "edit details": (["UPDATE audit_log SET details = '{\"n\":0}' WHERE id = 3"], 3, "edited"),
    "edit time": (["UPDATE audit_log SET ts_ms = ts_ms + 1 WHERE id = 3"], 3, "edited"),
    "edit target of last": ([f"UPDATE audit_log SET target = 'x' WHERE id = {N_ENTRIES}"], N_ENTRIES, "edited"),
    "replace hash": (["UPDATE audit_log SET hash = printf('%064d', 0) WHERE id = 3"], 3, "edited"),
    "delete middle": (["DELETE FROM audit_log WHERE id = 3"], 4, "deleted, reordered or inserted"),
    "delete first": (["DELETE FROM audit_log WHERE id = 1"], 2, "deleted, reordered or inserted"),
    "delete last": ([f"DELETE FROM audit_log WHERE id = {N_ENTRIES}"], N_ENTRIES, "end of the trail was deleted"),
    "delete all": (["DELETE FROM audit_log"], 1, "end of the trail was deleted"),
    "delete last and move head back": (
        [
            f"DELETE FROM audit_log WHERE id = {N_ENTRIES}",
            f"UPDATE audit_head SET last_id = {N_ENTRIES - 1}, "
            f"last_hash = (SELECT hash FROM audit_log WHERE id = {N_ENTRIES - 1})",
        ],
        N_ENTRIES - 1,
        "head record was altered",
    ),
    "delete head": (["DELETE FROM audit_head"], N_ENTRIES, "head record is missing"),
    "swap rows": (
        [
            "CREATE TEMP TABLE t AS SELECT * FROM audit_log WHERE id IN (2, 3)",
            f"UPDATE audit_log SET ({COLS}) = (SELECT {COLS} FROM t WHERE t.id = 3) WHERE id = 2",
            f"UPDATE audit_log SET ({COLS}) = (SELECT {COLS} FROM t WHERE t.id = 2) WHERE id = 3",
        ],
        2,
        "deleted, reordered or inserted",
    ),
    "renumber rows": (
        [
            "UPDATE audit_log SET id = 100 WHERE id = 2",
            "UPDATE audit_log SET id = 2 WHERE id = 3",
            "UPDATE audit_log SET id = 3 WHERE id = 100",
        ],
        2,
        "deleted, reordered or inserted",
    ),
    "insert in the middle": (
        [
            "UPDATE audit_log SET id = id + 100 WHERE id > 3",
            "UPDATE audit_log SET id = id - 99 WHERE id > 100",
            f"INSERT INTO audit_log (id, {COLS}) SELECT 4, ts_ms, 'eve', 'silence.expire', 'silence/1', '{{}}', kid, "
            "hash, printf('%064d', 4) FROM audit_log WHERE id = 3",
        ],
        4,
        "edited",
    ),
    "append a copy": (
        [f"INSERT INTO audit_log (id, {COLS}) SELECT id + 1, {COLS} FROM audit_log WHERE id = {N_ENTRIES}"],
        N_ENTRIES + 1,
        "deleted, reordered or inserted",
    ),
    "append a forged entry": (
        [
            f"INSERT INTO audit_log (id, {COLS}) SELECT id + 1, ts_ms, 'eve', 'keys.create', 'key/x', '{{}}', kid, "
            f"hash, printf('%064d', 7) FROM audit_log WHERE id = {N_ENTRIES}"
        ],
        N_ENTRIES + 1,
        "edited",
    ),
}


@pytest.mark.parametrize("case", list(TAMPERING))
def test_tampering_with_raw_sql_is_detected(db: Path, raw: sqlite3.Connection, ring: Keyring, case: str) -> None:
    statements, bad_id, reason = TAMPERING[case]
    assert verify(db, ring) == (None, "")
    for sql in statements:
        raw.execute(sql)
    got_id, got_reason = verify(db, ring)
    assert got_id == bad_id and reason in got_reason, (case, got_id, got_reason)


def test_a_chain_rebuilt_with_another_key_is_detected(db: Path, ring: Keyring) -> None:
    impostor = Keyring([("k1", secrets.token_bytes(32))])
    bad_id, reason = verify(db, impostor)
    assert bad_id == 1 and reason.startswith("hash mismatch: the entry was edited or forged")
    assert verify(db, ring) == (None, "")


def test_rotation_keeps_old_entries_verifiable(db: Path, material: bytes) -> None:
    rotated = Keyring([("k2", secrets.token_bytes(32)), ("k1", material)])
    with AuditLog(db, rotated, clock=Clock(BASE_MS + 10 * 60_000)) as log:
        entry = log.record("ops", "keys.rotate", "data-key/k2")
        assert entry.kid == "k2" and entry.id == N_ENTRIES + 1
        assert log.verify().ok
    bad_id, reason = verify(db, Keyring([("k2", secrets.token_bytes(32))]))
    assert bad_id == 1 and "key id 'k1', not in the keyring (known: k2)" in reason


@pytest.mark.parametrize(
    ("details", "message"),
    [
        ({"user_id": "u1"}, "details.user_id: personal data and secrets must not go"),
        ({"who": {"ip_addr": "10.0.0.1"}}, "details.who.ip_addr"),
        ({"items": [{"Password": "x"}]}, r"details.items\[0\].Password"),
        ({"api_key": "tw_x"}, "details.api_key"),
        ({"ratio": float("nan")}, "not plain JSON"),
        ({"when": object()}, "not plain JSON"),
    ],
)
def test_details_without_personal_data_or_secrets(ring: Keyring, details: dict[str, object], message: str) -> None:
    with AuditLog(":memory:", ring) as log:
        with pytest.raises(AuditError, match=message) as info:
            log.record("ops", "test", "t", **details)
        assert log.entries() == []
    assert "10.0.0.1" not in str(info.value) and "tw_x" not in str(info.value)


def test_actor_and_action_are_required(ring: Keyring) -> None:
    with AuditLog(":memory:", ring) as log:
        for actor, action in (("", "x"), ("ops", " ")):
            with pytest.raises(AuditError, match="must be a non-empty string"):
                log.record(actor, action)


def test_threads_share_one_log_and_two_connections(tmp_path: Path, ring: Keyring) -> None:
    path = tmp_path / "audit.db"
    first, second = AuditLog(path, ring), AuditLog(path, ring)  # like two processes on one file
    errors: list[BaseException] = []

    def writer(log: AuditLog, n: int) -> Callable[[], None]:
        def run() -> None:
            try:
                for i in range(25):
                    log.record(f"worker-{n}", "alert.notify", f"fp/{i}", attempt=i)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        return run

    threads = [threading.Thread(target=writer(first if n % 2 else second, n)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    result = first.verify()
    assert result.ok and result.checked == 200
    assert [e.id for e in second.entries()] == list(range(1, 201))
    first.close()
    second.close()


def test_logs_carry_no_details(ring: Keyring, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="tunewatch")
    with AuditLog(":memory:", ring) as log:
        log.record("ops", "silence.add", "silence/9", comment="maintenance of edge-7 in BR")
    assert "audit entry 1 recorded (action silence.add)" in caplog.text
    assert "maintenance" not in caplog.text and repr(log) == "AuditLog(keyring=Keyring(active='k1', kids=('k1',)))"


# -- CLI ----------------------------------------------------------------------------------------------------------


def run(*args: str | Path, material: bytes | None = None) -> Result:
    env = {"COLUMNS": "200", ENV_KEY_FILE: "", ENV_KEY: "", "TUNEWATCH_DB": ""}
    if material is not None:
        env[ENV_KEY] = "k1:" + base64.b64encode(material).decode()
    return runner.invoke(app, ["audit", *map(str, args)], env=env)


def test_cli_list(db: Path) -> None:
    result = run("list", "--db", db)
    assert result.exit_code == 0, result.output
    assert "audit trail: 6 entries" in result.output and "silence/6" in result.output
    assert "2026-01-05T00:01:00.000Z" in result.output
    result = run("list", "--db", db, "--actor", "ci", "--json")
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [r["id"] for r in lines] == [2, 4, 6] and lines[0]["details"] == {"matchers": ["market=M2"], "n": 2}
    result = run("list", "--db", db, "--since", "2026-01-05T00:05:00Z", "--json")
    assert [json.loads(line)["id"] for line in result.output.splitlines()] == [5, 6]
    assert run("list", "--db", db, "--since", "1h", "--json").output == ""  # all entries are older
    result = run("list", "--db", db, "--since", "yesterday")
    assert result.exit_code == 2 and "neither an RFC 3339 time" in result.output


def test_cli_verify(db: Path, raw: sqlite3.Connection, material: bytes) -> None:
    result = run("verify", "--db", db, material=material)
    assert result.exit_code == 0 and f"audit trail OK: {N_ENTRIES} entries, head id {N_ENTRIES}" in result.output
    raw.execute("DELETE FROM audit_log WHERE id = 4")
    result = run("verify", "--db", db, material=material)
    assert result.exit_code == 1 and "audit trail BROKEN at entry id 5" in result.output
    assert "3 entries before it verified" in result.output


def test_cli_errors(tmp_path: Path, db: Path) -> None:
    result = run("verify", "--db", db)
    assert result.exit_code == 2 and "no data key" in result.output and "Traceback" not in result.output
    result = run("list", "--db", tmp_path / "nope.db")
    assert result.exit_code == 2 and "no audit trail at" in result.output
    assert not (tmp_path / "nope.db").exists()
