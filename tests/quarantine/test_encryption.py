"""Encryption at rest of quarantined raw bytes: real SQLite files, real keys from the environment or a key file."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import msgspec
import pytest

from tests.quarantine.conftest import ingest, line
from tunewatch.quarantine.crypto import NONCE_BYTES, TAG_BYTES, RawDecryptionError
from tunewatch.quarantine.rows import MIGRATIONS
from tunewatch.quarantine.store import QuarantineStore
from tunewatch.security.keyring import ENV_KEY, ENV_KEY_FILE, KeyringError, new_entry
from tunewatch.store.sqlite import open_store

USER = "listener-4711@example.com"
IP = "198.51.100.23"


def bad_lines(n: int = 3, start: int = 1) -> list[bytes]:
    """``n`` rejected lines (unknown market) carrying the known user id and IP."""
    return [line(i, market="XX", user_id=USER, ip_addr=IP) for i in range(start, start + n)]


def on_disk(db_path: Path) -> bytes:
    """Every byte of the database, its WAL and shared-memory files."""
    return b"".join(p.read_bytes() for p in sorted(db_path.parent.glob(db_path.name + "*")))


def stored(db_path: Path) -> list[tuple[int, bytes, str | None]]:
    """``(id, raw column, raw_kid)`` of every row, read with plain sqlite3 (what is really in the file)."""
    conn = sqlite3.connect(db_path)
    try:
        return [
            (int(i), bytes(r), k) for i, r, k in conn.execute("SELECT id, raw, raw_kid FROM quarantine ORDER BY id")
        ]
    finally:
        conn.close()


def sql(db_path: Path, statement: str, *params: object) -> None:
    conn = sqlite3.connect(db_path)
    try:
        with conn:
            conn.execute(statement, params)
    finally:
        conn.close()


@pytest.fixture
def k1() -> str:
    return new_entry("k1")


@pytest.fixture
def k2() -> str:
    return new_entry("k2")


def test_round_trip_with_env_key(db_path: Path, k1: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_KEY, k1)
    lines = bad_lines()
    with QuarantineStore(db_path) as store:
        assert store.encrypting_kid == "k1"
        ingest(store, lines)
        assert [e.raw for e in store.list()] == lines
        assert store.get(2) is not None and store.get(2).raw == lines[1]  # type: ignore[union-attr]
        assert store.count_by_key() == {"k1": 3}
    rows = stored(db_path)
    assert [k for _, _, k in rows] == ["k1"] * 3
    assert all(len(r) == NONCE_BYTES + len(raw) + TAG_BYTES for (_, r, _), raw in zip(rows, lines, strict=True))
    assert len({r[:NONCE_BYTES] for _, r, _ in rows}) == 3  # a fresh nonce per row
    disk = on_disk(db_path)
    assert USER.encode() not in disk and IP.encode() not in disk


def test_key_file_configuration(db_path: Path, tmp_path: Path, k1: str, monkeypatch: pytest.MonkeyPatch) -> None:
    key_file = tmp_path / "data.key"
    key_file.write_text(f"# quarantine key\n{k1}\n")
    key_file.chmod(0o600)
    monkeypatch.setenv(ENV_KEY_FILE, str(key_file))
    with QuarantineStore(db_path) as store:
        ingest(store, bad_lines(1))
        assert store.get(1).raw == bad_lines(1)[0]  # type: ignore[union-attr]
    assert stored(db_path)[0][2] == "k1"
    key_file.chmod(0o644)
    with pytest.raises(KeyringError, match="0600"):
        QuarantineStore(db_path)


def test_invalid_key_configuration_refuses_to_open(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_KEY, "k1:not-a-key")
    with pytest.raises(KeyringError, match=r"not valid base64|bytes"):
        QuarantineStore(db_path)  # never falls back to plaintext
    assert not db_path.exists()


def test_without_key_behaviour_is_unchanged(db_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    lines = bad_lines(2)
    with caplog.at_level(logging.INFO, logger="tunewatch.quarantine"), QuarantineStore(db_path) as store:
        assert store.encrypting_kid is None
        ingest(store, lines)
        assert [e.raw for e in store.list()] == lines
        assert store.count_by_key() == {None: 2}
    assert [(r, k) for _, r, k in stored(db_path)] == [(raw, None) for raw in lines]
    assert USER.encode() in on_disk(db_path)  # the check of the encrypted tests is meaningful
    assert any("NOT encrypted" in r.message and r.levelno == logging.WARNING for r in caplog.records)


def test_startup_log_names_the_key_id_only(db_path: Path, k1: str, monkeypatch: pytest.MonkeyPatch,
                                           caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    monkeypatch.setenv(ENV_KEY, k1)
    with caplog.at_level(logging.INFO, logger="tunewatch.quarantine"):
        QuarantineStore(db_path).close()
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "encrypted (AES-256-GCM), key id k1" in messages
    assert k1.split(":", 1)[1] not in messages


def test_flipped_byte_is_a_clear_error(db_path: Path, k1: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_KEY, k1)
    with QuarantineStore(db_path) as store:
        ingest(store, bad_lines(2))
    _, blob, _ = stored(db_path)[1]
    flipped = bytearray(blob)
    flipped[NONCE_BYTES + 5] ^= 0x01
    sql(db_path, "UPDATE quarantine SET raw = ? WHERE id = 2", bytes(flipped))
    with QuarantineStore(db_path) as store:
        assert store.get(1).raw == bad_lines(2)[0]  # type: ignore[union-attr]
        with pytest.raises(RawDecryptionError) as err:
            store.get(2)
        with pytest.raises(RawDecryptionError):
            store.list()  # never some rows and garbage
    message = str(err.value)
    assert "quarantine entry 2" in message and "'k1'" in message and "authentication" in message
    assert k1.split(":", 1)[1] not in message and USER not in message


def test_swapped_and_relabelled_rows_fail(db_path: Path, k1: str, k2: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_KEY, f"{k1},{k2}")
    with QuarantineStore(db_path) as store:
        ingest(store, bad_lines(3))
    rows = stored(db_path)
    sql(db_path, "UPDATE quarantine SET raw = ? WHERE id = 1", rows[1][1])
    sql(db_path, "UPDATE quarantine SET raw = ? WHERE id = 2", rows[0][1])
    sql(db_path, "UPDATE quarantine SET raw_kid = 'k2' WHERE id = 3")
    with QuarantineStore(db_path) as store:
        for entry_id, kid in ((1, "'k1'"), (2, "'k1'"), (3, "'k2'")):
            with pytest.raises(RawDecryptionError, match=f"quarantine entry {entry_id}: .*key id {kid}"):
                store.get(entry_id)
    sql(db_path, "UPDATE quarantine SET raw = x'0102' WHERE id = 1")
    with QuarantineStore(db_path) as store, pytest.raises(RawDecryptionError, match=r"entry 1: .*truncated"):
        store.get(1)


def test_key_rotation(db_path: Path, k1: str, k2: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_KEY, k1)
    with QuarantineStore(db_path) as store:
        ingest(store, bad_lines(2))
    monkeypatch.setenv(ENV_KEY, f"{k2},{k1}")  # new key first, old one kept to read old rows
    with QuarantineStore(db_path) as store:
        assert store.encrypting_kid == "k2"
        ingest(store, bad_lines(1, start=3))
        assert [e.raw for e in store.list()] == bad_lines(3)
        assert store.count_by_key() == {"k1": 2, "k2": 1}
    monkeypatch.setenv(ENV_KEY, k2)  # old key dropped too early
    with QuarantineStore(db_path) as store:
        assert store.get(3).raw == bad_lines(1, start=3)[0]  # type: ignore[union-attr]
        with pytest.raises(RawDecryptionError, match=r"entry 1: .*'k1' .*not in the keyring \(known: k2\)"):
            store.get(1)


def test_missing_key_on_an_encrypted_row(db_path: Path, k1: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_KEY, k1)
    with QuarantineStore(db_path) as store:
        ingest(store, bad_lines(1))
    monkeypatch.delenv(ENV_KEY)
    with QuarantineStore(db_path) as store:
        assert store.count() == 1 and store.count_by_reason() == {"market: unknown_country": 1}  # metadata readable
        with pytest.raises(RawDecryptionError, match=r"entry 1: .*'k1' cannot be read: no data key is configured"):
            store.get(1)


def test_wrong_key_with_the_same_id(db_path: Path, k1: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_KEY, k1)
    with QuarantineStore(db_path) as store:
        ingest(store, bad_lines(1))
    monkeypatch.setenv(ENV_KEY, new_entry("k1"))
    with QuarantineStore(db_path) as store, pytest.raises(RawDecryptionError, match=r"entry 1: .*'k1' fail auth"):
        store.get(1)


def _legacy_database(db_path: Path, lines: list[bytes]) -> None:
    """A database at schema version 1 (before encryption) holding plaintext rows."""
    conn = open_store(db_path, "store.quarantine", MIGRATIONS[:1])
    try:
        with conn:
            conn.executemany(
                "INSERT INTO quarantine (received_at, source, line_no, event_id, reasons, raw) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(1.0, "old", i, f"e{i}", '["market: unknown_country"]', raw) for i, raw in enumerate(lines, 1)],
            )
    finally:
        conn.close()


def test_legacy_plaintext_rows_still_read_and_rekey_encrypts_them(
    db_path: Path, k1: str, k2: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = bad_lines(2)
    _legacy_database(db_path, old)
    monkeypatch.setenv(ENV_KEY, k1)
    with QuarantineStore(db_path) as store:
        ingest(store, bad_lines(1, start=3))
        assert [e.raw for e in store.list()] == bad_lines(3)
        assert store.count_by_key() == {None: 2, "k1": 1}
        report = store.rekey()
        assert (report.kid, report.encrypted, report.reencrypted, report.unchanged) == ("k1", 2, 0, 1)
        assert [e.raw for e in store.list()] == bad_lines(3)
    assert USER.encode() not in on_disk(db_path)  # old plaintext overwritten, not left in free space
    monkeypatch.setenv(ENV_KEY, f"{k2},{k1}")
    with QuarantineStore(db_path) as store:
        report = store.rekey()
        assert (report.encrypted, report.reencrypted, report.unchanged) == (0, 3, 0)
    monkeypatch.setenv(ENV_KEY, k2)  # k1 can go now
    with QuarantineStore(db_path) as store:
        assert [e.raw for e in store.list()] == bad_lines(3)
        assert store.count_by_key() == {"k2": 3}


def test_purge_leaves_no_plaintext_behind(db_path: Path) -> None:
    with QuarantineStore(db_path) as store:
        ingest(store, bad_lines(50), received_at=1.0)
        assert store.purge(2.0) == 50
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert USER.encode() not in on_disk(db_path)


def test_rekey_without_key_is_refused(db_path: Path) -> None:
    with QuarantineStore(db_path) as store, pytest.raises(Exception, match="rekey needs a data key"):
        store.rekey()


def test_export_and_replay_decrypt(db_path: Path, tmp_path: Path, k1: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_KEY, k1)
    with QuarantineStore(db_path) as store:
        ingest(store, bad_lines(2))
        out = tmp_path / "export.ndjson"
        assert store.export(out) == 2
        records = [msgspec.json.decode(r) for r in out.read_bytes().splitlines()]
        assert [r["raw"].encode() for r in records] == bad_lines(2)
        fixed = tmp_path / "fixed.ndjson"
        fixed.write_bytes(out.read_bytes().replace(b'\\"market\\":\\"XX\\"', b'\\"market\\":\\"BR\\"'))
        from tunewatch.validate import EnterpriseDataValidator

        again = store.replay(EnterpriseDataValidator())  # stored (decrypted) lines are still invalid
        assert (again.received, again.rejected) == (2, 2)
        report = store.replay_file(fixed, EnterpriseDataValidator())
        assert (report.accepted, report.replayed_ids) == (2, [1, 2])


def test_export_of_an_unreadable_row_leaves_no_partial_file(
    db_path: Path, tmp_path: Path, k1: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_KEY, k1)
    with QuarantineStore(db_path) as store:
        ingest(store, bad_lines(3))
    sql(db_path, "UPDATE quarantine SET raw = zeroblob(40) WHERE id = 3")
    out = tmp_path / "export.ndjson"
    with QuarantineStore(db_path) as store, pytest.raises(RawDecryptionError, match="quarantine entry 3"):
        store.export(out)
    assert not out.exists()


def test_empty_raw_stays_empty(db_path: Path, k1: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import polars as pl

    monkeypatch.setenv(ENV_KEY, k1)
    frame = pl.DataFrame(
        {"source": ["api", "api"], "line_no": [1, 2], "event_id": [None, "e2"],
         "reasons": [["line: too_long"], ["market: unknown_country"]], "raw": [None, bad_lines(1)[0]]},
        schema_overrides={"event_id": pl.String, "raw": pl.Binary},
    )  # fmt: skip
    with QuarantineStore(db_path) as store:
        assert store.add(frame) == 2
        assert [e.raw for e in store.list()] == [b"", bad_lines(1)[0]]
        assert store.export(db_path.parent / "raw.txt", "raw") == 1
    assert [k for _, _, k in stored(db_path)] == ["k1", "k1"]
