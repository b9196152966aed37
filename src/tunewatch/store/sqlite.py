"""Open SQLite databases in WAL mode and apply per-component schema migrations.

Several components share one database file, so versions are kept per component in a
``schema_migrations`` table rather than in ``PRAGMA user_version``. A migration list is append-only: the
statement script at index ``i`` takes the component from version ``i`` to ``i + 1``.

>>> conn = open_store(":memory:", "example", ["CREATE TABLE t (x INTEGER)", "ALTER TABLE t ADD COLUMN y TEXT"])
>>> conn.execute("SELECT version FROM schema_migrations WHERE component = 'example'").fetchone()[0]
2
>>> migrate(conn, "example", ["CREATE TABLE t (x INTEGER)", "ALTER TABLE t ADD COLUMN y TEXT"])
2
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tunewatch.errors import TunewatchError

logger = logging.getLogger(__name__)

_MIGRATIONS_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
)


class StoreError(TunewatchError):
    """A database cannot be opened or migrated."""


def connect(path: str | Path, *, timeout_s: float = 30.0, check_same_thread: bool = True) -> sqlite3.Connection:
    """Open ``path`` (``":memory:"`` for a private in-memory database) with WAL, a busy timeout and foreign keys.

    The connection is in autocommit mode (``isolation_level=None``): use ``with transaction(conn)`` style
    ``BEGIN``/``COMMIT`` or single statements. ``synchronous=NORMAL`` is durable across process crashes in WAL
    mode (only an OS crash can lose the last transactions).

    A database file is created with mode ``0600`` (SQLite gives its ``-wal`` and ``-shm`` files the same mode), and
    an existing one that group or others may access is narrowed to ``0600`` (with its ``-wal``/``-shm``): it may
    hold plaintext quarantined events, alerts and key hashes.
    """
    target = str(path)
    if target != ":memory:":
        parent = Path(target).parent
        if not parent.exists():
            raise StoreError(f"cannot open database {target}: directory {parent} does not exist")
        make_private(Path(target), create=not target.startswith("file:"))
    try:
        conn = sqlite3.connect(target, timeout=timeout_s, isolation_level=None, check_same_thread=check_same_thread)
        conn.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
        if target != ":memory:":
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot open database {target}: {exc}") from exc
    return conn


def make_private(path: Path, *, create: bool = True) -> None:
    """Create ``path`` empty with mode ``0600`` if absent (``create``); narrow it and its ``-wal``/``-shm`` files
    to ``0600`` when group or others have access. Files owned by another user are left as they are."""
    if create:
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass
        except OSError as exc:
            raise StoreError(f"cannot create database {path}: {exc.strerror}") from None
    for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            st = file.stat()
            if st.st_mode & 0o077 and st.st_uid == os.getuid():
                file.chmod(0o600)
                logger.warning("%s was readable by group or others: narrowed to mode 0600", file)
        except OSError:
            continue


def migrate(conn: sqlite3.Connection, component: str, migrations: Sequence[str]) -> int:
    """Bring ``component``'s tables to ``len(migrations)``; return the resulting version.

    Each pending script runs in its own transaction together with the version bump, so a failure leaves the
    schema at the last complete version. A database newer than the code (more versions applied than known)
    is refused rather than silently used.
    """
    conn.execute(_MIGRATIONS_TABLE)
    row = conn.execute("SELECT version FROM schema_migrations WHERE component = ?", (component,)).fetchone()
    current = int(row[0]) if row else 0
    if current > len(migrations):
        raise StoreError(
            f"database schema for {component!r} is at version {current}, newer than this tunewatch knows "
            f"({len(migrations)}); upgrade tunewatch"
        )
    for version in range(current, len(migrations)):
        try:
            conn.execute("BEGIN IMMEDIATE")
            for statement in _statements(migrations[version]):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (component, version) VALUES (?, ?) "
                "ON CONFLICT(component) DO UPDATE SET version = excluded.version",
                (component, version + 1),
            )
            conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            conn.execute("ROLLBACK")
            raise StoreError(f"migration {version + 1} of {component!r} failed: {exc}") from exc
    return len(migrations)


def open_store(
    path: str | Path, component: str, migrations: Sequence[str], *, check_same_thread: bool = True
) -> sqlite3.Connection:
    """:func:`connect` then :func:`migrate` ``component``; the usual way to open a component's database."""
    conn = connect(path, check_same_thread=check_same_thread)
    migrate(conn, component, migrations)
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on error) on an autocommit connection from :func:`connect`."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _statements(script: str) -> list[str]:
    """Split a migration script into complete statements (``executescript`` would commit on its own)."""
    out: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out
