"""Whether a SQLite database in WAL mode may have changed, told by its wal-index without a call into SQLite.

Every commit to a database in WAL mode, by any connection of any process, rewrites the header at the start of
its wal-index (the ``-shm`` file beside it, shared memory that every connection maps): a change counter
(``iChange``), the last valid frame (``mxFrame``) and, after the log restarts, new salts (see SQLite's "WAL-mode
File Format", section 2.1). Readers never write it. So when its first 48 bytes are the same as at an earlier
look, no transaction was committed in between; when they differ, something may have changed and the caller asks
SQLite (``PRAGMA data_version``).

Why not simply ask SQLite every time: a call into SQLite releases Python's GIL, and on the event loop of a busy
service each such call waits for the GIL to come back from the threads running pipeline steps (about 8 µs alone,
over 100 µs with one busy thread). Reading the mapped header is a memory comparison that keeps the GIL.

The probe maps the header read-only, only while the connection that opened it keeps the wal-index open: SQLite
never truncates a wal-index that a connection still has open, so the mapping stays valid for as long as that
connection does (the connection must not be closed while the probe is used).
"""

from __future__ import annotations

import mmap
import os
import sqlite3
from typing import Final

#: bytes of the wal-index header that every commit rewrites (the first of its two copies)
HEADER_BYTES: Final = 48
#: the wal-index holds at least both header copies and the checkpoint information before the first hash table
_MIN_SIZE: Final = 136


class WalIndexProbe:
    """The wal-index header of one database, mapped read-only (see the module docstring).

    >>> import pathlib, sqlite3, tempfile
    >>> path = str(pathlib.Path(tempfile.mkdtemp()) / "db")
    >>> conn = sqlite3.connect(path, isolation_level=None)
    >>> _ = conn.execute("PRAGMA journal_mode = WAL"); _ = conn.execute("CREATE TABLE t (x)")
    >>> probe = WalIndexProbe.open(conn, path)
    >>> before = probe.stamp()
    >>> _ = conn.execute("SELECT * FROM t").fetchall()
    >>> probe.stamp() == before
    True
    >>> _ = sqlite3.connect(path, isolation_level=None).execute("INSERT INTO t VALUES (1)")
    >>> probe.stamp() == before
    False
    """

    __slots__ = ("_map",)

    def __init__(self, mapped: mmap.mmap) -> None:
        self._map = mapped

    @classmethod
    def open(cls, conn: sqlite3.Connection, database: str | None) -> WalIndexProbe | None:
        """A probe of ``conn``'s database file ``database``; None for an in-memory database, one not in WAL mode,
        or a wal-index that cannot be mapped (the caller then asks SQLite every time)."""
        if database is None:
            return None
        try:
            mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()
            if mode != "wal":
                return None
            conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()  # a read opens (and keeps) the wal-index
            fd = os.open(database + "-shm", os.O_RDONLY)
        except (sqlite3.Error, OSError):
            return None
        try:
            if os.fstat(fd).st_size < _MIN_SIZE:
                return None
            return cls(mmap.mmap(fd, HEADER_BYTES, access=mmap.ACCESS_READ))
        except (OSError, ValueError):
            return None
        finally:
            os.close(fd)

    def stamp(self) -> bytes:
        """The header now: equal to an earlier stamp only if no transaction was committed since."""
        return self._map[:HEADER_BYTES]

    def close(self) -> None:
        """Unmap the header."""
        self._map.close()
