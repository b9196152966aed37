"""The wal-index probe tells a commit by any connection from no commit, without a call into SQLite."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from tunewatch.security.change_probe import WalIndexProbe
from tunewatch.security.keys import ApiKeyStore
from tunewatch.store.sqlite import connect


def _probe(db: Path) -> tuple[sqlite3.Connection, WalIndexProbe]:
    conn = connect(db, check_same_thread=False)
    conn.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
    probe = WalIndexProbe.open(conn, str(db))
    assert probe is not None
    return conn, probe


def test_reads_leave_the_stamp_alone_and_every_commit_changes_it(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    conn, probe = _probe(db)
    other = connect(db, check_same_thread=False)
    before = probe.stamp()
    other.execute("SELECT COUNT(*) FROM t").fetchall()
    conn.execute("SELECT COUNT(*) FROM t").fetchall()
    assert probe.stamp() == before
    other.execute("INSERT INTO t VALUES (1)")
    after_one = probe.stamp()
    assert after_one != before
    conn.execute("INSERT INTO t VALUES (2)")  # the probing connection's own commit too
    assert probe.stamp() != after_one


def test_a_commit_by_another_process_changes_the_stamp(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    _, probe = _probe(db)
    before = probe.stamp()
    code = (
        f"import sqlite3; c = sqlite3.connect({str(db)!r}, isolation_level=None); c.execute('INSERT INTO t VALUES (3)')"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert probe.stamp() != before


def test_no_probe_without_a_wal_index(tmp_path: Path) -> None:
    memory = sqlite3.connect(":memory:")
    assert WalIndexProbe.open(memory, None) is None
    rollback = sqlite3.connect(tmp_path / "r.db", isolation_level=None)
    rollback.execute("CREATE TABLE t (x INTEGER)")
    assert WalIndexProbe.open(rollback, str(tmp_path / "r.db")) is None  # journal_mode = delete


def test_a_key_store_without_a_wal_index_still_sees_other_connections(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    own = sqlite3.connect(db, isolation_level=None, check_same_thread=False)  # rollback journal: no probe
    store = ApiKeyStore(own)
    key, info = store.create("ingester", {"ingest"}, now_ms=1)
    assert store.verify(key) == info
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("UPDATE api_keys SET revoked_ms = 2")
    assert store.verify(key) is None
