"""Verified API keys are remembered, and a revocation or any other change to the database forgets them at once."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from tunewatch.security.keys import VERIFIED_CACHE_SIZE, ApiKeyStore
from tunewatch.store.sqlite import connect


def _tamper(conn: sqlite3.Connection, key_id: str) -> None:
    """Break a key's stored hash (as if it had been replaced), through ``conn``."""
    conn.execute("UPDATE api_keys SET hash = ? WHERE id = ?", (b"\x00" * 32, key_id))


def test_a_verified_key_is_remembered_until_another_connection_changes_the_database(tmp_path: Path) -> None:
    own = connect(tmp_path / "k.db", check_same_thread=False)
    store = ApiKeyStore(own)
    key, info = store.create("ingester", {"ingest"}, now_ms=1)
    assert store.verify(key) == info
    _tamper(own, info.id)  # the store's own connection: SQLite's data_version does not move
    assert store.verify(key) == info  # the remembered verdict: no row lookup, no HMAC
    other = connect(tmp_path / "k.db", check_same_thread=False)
    other.execute("UPDATE api_keys SET name = ?", ("renamed",))  # any change by another connection or process
    assert store.verify(key) is None  # forgotten; the row's hash no longer matches


def test_a_revocation_through_the_store_takes_effect_at_the_next_check(tmp_path: Path) -> None:
    store = ApiKeyStore(connect(tmp_path / "k.db", check_same_thread=False))
    key, info = store.create("ingester", {"ingest"}, now_ms=1)
    kept, kept_info = store.create("other", {"ingest"}, now_ms=1)
    assert store.verify(key) == info and store.verify(kept) == kept_info
    store.revoke(info.id, now_ms=2)
    assert store.verify(key) is None
    assert store.verify(kept) == kept_info


def test_a_revocation_by_the_cli_in_another_process_takes_effect_at_the_next_check(tmp_path: Path) -> None:
    db = tmp_path / "tw.db"
    store = ApiKeyStore(connect(db, check_same_thread=False))
    key, info = store.create("ingester", {"ingest"}, now_ms=1)
    assert store.verify(key) == info
    subprocess.run(
        [sys.executable, "-m", "tunewatch.cli.main", "keys", "revoke", info.id, "--db", str(db)],
        check=True, capture_output=True,
    )  # fmt: skip
    assert store.verify(key) is None


def test_failures_are_not_remembered_and_the_cache_is_bounded(tmp_path: Path) -> None:
    own = connect(tmp_path / "k.db", check_same_thread=False)
    store = ApiKeyStore(own)
    keys = [store.create(f"k{i}", {"ingest"}, now_ms=1) for i in range(VERIFIED_CACHE_SIZE + 1)]
    wrong = keys[0][0][:-1] + ("A" if keys[0][0][-1] != "A" else "B")
    assert store.verify(wrong) is None and store.verify(wrong) is None
    for key, info in keys:
        assert store.verify(key) == info
    for _, info in keys:
        _tamper(own, info.id)
    assert store.verify(keys[0][0]) is None  # the least recently verified one was dropped: checked again
    assert store.verify(keys[-1][0]) == keys[-1][1]  # the most recent one is still remembered
