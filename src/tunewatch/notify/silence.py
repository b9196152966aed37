"""Silences: time-bounded label matchers that mute alerts.

One store, one table (``silences``) in the service's database: the HTTP API (v1 and Alertmanager's v2), the
CLI (``tunewatch silences``, directly or through the API) and the notification pipeline all read and write the
same rows. Each :class:`SilenceStore` keeps the silences in memory and re-reads them only when they changed:
a write through this store, or one by another connection or process, which is seen by a cheap check (SQLite's
``PRAGMA data_version``, then the table's change counter ``version``) before each read — never a full reload
per alert. Every change can be audited by a callback given to the store (:class:`~tunewatch.security.audit.Auditor`).

A silence is *pending* before ``starts_at``, *active* until ``ends_at`` and *expired* after. Expiring an
active silence ends it now; expiring a pending one makes it expired without ever becoming active.

>>> import sqlite3
>>> from tunewatch.notify.matchers import parse_matchers
>>> store = SilenceStore(sqlite3.connect(":memory:", isolation_level=None))
>>> s = store.add(parse_matchers(["market=BR"]), starts_at=0, ends_at=3_600_000, created_by="ops",
...               comment="cdn work", now_ms=0)
>>> s.mutes({"market": "BR", "alertname": "x"}, now_ms=60_000), s.state(7_200_000)
(True, 'expired')
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tunewatch.errors import TunewatchError
from tunewatch.notify.matchers import Matcher, matches_all, parse_matchers
from tunewatch.security.audit import Auditor
from tunewatch.store.sqlite import connect, migrate, transaction

SilenceState = Literal["pending", "active", "expired"]

MIGRATIONS = [
    """
    CREATE TABLE silences (
        id TEXT PRIMARY KEY,
        matchers TEXT NOT NULL,
        starts_at INTEGER NOT NULL,
        ends_at INTEGER NOT NULL,
        created_by TEXT NOT NULL,
        comment TEXT NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE INDEX silences_ends_at ON silences (ends_at);
    """,
    # change counter: every write gives its row the next version, so "did anything change?" is one index lookup
    """
    ALTER TABLE silences ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX silences_version ON silences (version);
    """,
]
_COLUMNS = "id, matchers, starts_at, ends_at, created_by, comment, updated_at"
_NEXT_VERSION = "(SELECT COALESCE(MAX(version), 0) + 1 FROM silences)"


class SilenceError(TunewatchError):
    """A silence cannot be created or changed (bad matchers or times, unknown id)."""


@dataclass(frozen=True, slots=True)
class Silence:
    """One silence."""

    id: str
    matchers: tuple[Matcher, ...]
    starts_at: int  #: epoch ms
    ends_at: int  #: epoch ms
    created_by: str
    comment: str
    updated_at: int

    def state(self, now_ms: int) -> SilenceState:
        """pending, active or expired at ``now_ms``."""
        if now_ms < self.starts_at:
            return "pending"
        return "active" if now_ms < self.ends_at else "expired"

    def mutes(self, labels: Mapping[str, str], now_ms: int) -> bool:
        """Whether this silence mutes an alert with ``labels`` at ``now_ms``."""
        return self.state(now_ms) == "active" and matches_all(self.matchers, labels)


class SilenceStore:
    """Silences in the ``silences`` table of a tunewatch database; thread-safe.

    ``max_ms`` bounds how long a silence lasts and how far ahead it may start (None: unbounded); ``audit``
    records every creation and expiry with the actor the caller names.
    """

    def __init__(
        self, conn: sqlite3.Connection, *, max_ms: int | None = None, audit: Auditor | None = None,
        owns_connection: bool = False,
    ) -> None:  # fmt: skip
        self._conn = conn
        self._lock = threading.RLock()
        self._owns = owns_connection
        self.max_ms = max_ms
        self.audit = audit
        migrate(conn, "notify.silences", MIGRATIONS)
        self._data_version: tuple[int, int] | None = None
        self._stamp: tuple[int, int] | None = None
        self._cache: list[Silence] = []
        self.reloads = 0  #: how many times the rows were read again (a change was seen)

    @classmethod
    def open(cls, path: str | Path, *, max_ms: int | None = None, audit: Auditor | None = None) -> SilenceStore:
        """The store of the database at ``path`` (``":memory:"``: private), on its own connection."""
        return cls(connect(path, check_same_thread=False), max_ms=max_ms, audit=audit, owns_connection=True)

    def close(self) -> None:
        """Close the connection if this store opened it."""
        if self._owns:
            self._conn.close()

    def add(
        self,
        matchers: Sequence[Matcher],
        *,
        starts_at: int,
        ends_at: int,
        created_by: str,
        comment: str,
        now_ms: int,
        actor: str | None = None,
        via: str | None = None,
    ) -> Silence:
        """Create a silence; it must have matchers, end after it starts and end in the future.

        ``actor`` (who asked; default ``created_by``) and ``via`` (http, cli, …) go to the audit trail.
        """
        if not matchers:
            raise SilenceError("a silence needs at least one matcher, e.g. market=BR")
        if all(m.matches({}) for m in matchers):
            raise SilenceError("at least one matcher must not match an empty label value (it would silence everything)")
        if ends_at <= starts_at:
            raise SilenceError("a silence must end after it starts")
        if ends_at <= now_ms:
            raise SilenceError("a silence must end in the future")
        self._check_bounds(starts_at, ends_at, now_ms)
        silence = Silence(uuid.uuid4().hex, tuple(matchers), starts_at, ends_at, created_by, comment, now_ms)
        self._insert(silence)
        self._audit(actor or created_by, "silence.create", silence, via, starts_at=starts_at, ends_at=ends_at,
                    created_by=created_by, comment=comment)  # fmt: skip
        return silence

    def update(
        self,
        silence_id: str,
        matchers: Sequence[Matcher],
        *,
        starts_at: int,
        ends_at: int,
        created_by: str,
        comment: str,
        now_ms: int,
        actor: str | None = None,
        via: str | None = None,
    ) -> Silence:
        """Change a silence as Alertmanager does: an active one whose matchers and start are kept may only have
        its end, comment or author changed in place; anything else expires it and creates a new silence (with a
        new id). Raises :class:`SilenceError` for an unknown or expired id."""
        with self._lock:
            old = self._unexpired(silence_id, now_ms, exact=True)
            state = old.state(now_ms)
            in_place = tuple(matchers) == old.matchers and (
                state == "pending" or starts_at == old.starts_at
            ) and ends_at > now_ms and ends_at > starts_at
            if not in_place:
                self.expire(old.id, now_ms, actor=actor, via=via)
                return self.add(matchers, starts_at=starts_at, ends_at=ends_at, created_by=created_by,
                                comment=comment, now_ms=now_ms, actor=actor, via=via)  # fmt: skip
            self._check_bounds(starts_at, ends_at, now_ms)
            with transaction(self._conn):
                self._conn.execute(
                    f"UPDATE silences SET starts_at = ?, ends_at = ?, created_by = ?, comment = ?, updated_at = ?, "
                    f"version = {_NEXT_VERSION} WHERE id = ?",
                    (starts_at, ends_at, created_by, comment, now_ms, old.id),
                )
            updated = Silence(old.id, old.matchers, starts_at, ends_at, created_by, comment, now_ms)
        self._audit(actor or created_by, "silence.update", updated, via, starts_at=starts_at, ends_at=ends_at,
                    comment=comment)  # fmt: skip
        return updated

    def get(self, silence_id: str) -> Silence | None:
        """The silence with this id, or with this unique id prefix."""
        found = [s for s in self._current() if s.id.startswith(silence_id)]
        exact = [s for s in found if s.id == silence_id]
        if exact:
            return exact[0]
        return found[0] if len(found) == 1 else None

    def find(self, now_ms: int, state: SilenceState | None = None) -> list[Silence]:
        """All silences (or those in ``state``), newest first."""
        return [s for s in self._current() if state is None or s.state(now_ms) == state]

    def active(self, now_ms: int) -> list[Silence]:
        """Silences active at ``now_ms``."""
        return [s for s in self._current() if s.state(now_ms) == "active"]

    def muting(self, labels: Mapping[str, str], now_ms: int) -> list[str]:
        """Ids of the silences that mute an alert with ``labels`` at ``now_ms``."""
        return [s.id for s in self._current() if s.mutes(labels, now_ms)]

    def expire(self, silence_id: str, now_ms: int, *, actor: str | None = None, via: str | None = None) -> Silence:
        """End a silence now (id or unique prefix); raise :class:`SilenceError` if unknown or already expired."""
        with self._lock:
            silence = self._unexpired(silence_id, now_ms, exact=False)
            starts = min(silence.starts_at, now_ms)
            with transaction(self._conn):
                self._conn.execute(
                    f"UPDATE silences SET starts_at = ?, ends_at = ?, updated_at = ?, version = {_NEXT_VERSION} "
                    "WHERE id = ?",
                    (starts, now_ms, now_ms, silence.id),
                )
            expired = Silence(silence.id, silence.matchers, starts, now_ms, silence.created_by, silence.comment,
                              now_ms)  # fmt: skip
        self._audit(actor or "unknown", "silence.expire", expired, via)
        return expired

    def gc(self, now_ms: int, retention_ms: int) -> int:
        """Delete silences that expired more than ``retention_ms`` ago; return how many."""
        with self._lock:
            return self._conn.execute("DELETE FROM silences WHERE ends_at < ?", (now_ms - retention_ms,)).rowcount

    # internals --------------------------------------------------------------------------------------------
    def _unexpired(self, silence_id: str, now_ms: int, *, exact: bool) -> Silence:
        """The silence with this id (or, unless ``exact``, unique prefix); :class:`SilenceError` if there is none
        or it has expired."""
        silence = self.get(silence_id)
        if silence is None or (exact and silence.id != silence_id):
            raise SilenceError(f"no silence with id {silence_id!r}")
        if silence.state(now_ms) == "expired":
            raise SilenceError(f"silence {silence.id} has already expired")
        return silence

    def _check_bounds(self, starts_at: int, ends_at: int, now_ms: int) -> None:
        if self.max_ms is None:
            return
        most = f"{self.max_ms // 86_400_000}d" if self.max_ms % 86_400_000 == 0 else f"{self.max_ms / 3_600_000:g}h"
        if starts_at > now_ms + self.max_ms:
            raise SilenceError(f"starts_at: more than {most} ahead (max_silence)")
        if ends_at - starts_at > self.max_ms:
            raise SilenceError(f"a silence lasts at most {most} (max_silence)")

    def _insert(self, s: Silence) -> None:
        with self._lock:
            self._conn.execute(
                f"INSERT INTO silences ({_COLUMNS}, version) VALUES (?, ?, ?, ?, ?, ?, ?, {_NEXT_VERSION})",
                (s.id, json.dumps([str(m) for m in s.matchers]), s.starts_at, s.ends_at, s.created_by, s.comment,
                 s.updated_at),
            )  # fmt: skip

    def _audit(self, actor: str, action: str, silence: Silence, via: str | None, **details: Any) -> None:
        if self.audit is None:
            return
        extra = {"via": via} if via else {}
        self.audit(actor, action, silence.id, matchers=[str(m) for m in silence.matchers], **details, **extra)

    def _current(self) -> list[Silence]:
        """The silences, newest first, read again only when a write (here or elsewhere) changed them."""
        with self._lock:
            data_version = int(self._conn.execute("PRAGMA data_version").fetchone()[0])
            seen = (data_version, self._conn.total_changes)  # other connections' commits, this connection's writes
            if seen == self._data_version and self._stamp is not None:
                return self._cache
            row = self._conn.execute("SELECT COALESCE(MAX(version), 0), COUNT(*) FROM silences").fetchone()
            stamp = (int(row[0]), int(row[1]))
            self._data_version = seen
            if stamp != self._stamp:
                rows = self._conn.execute(
                    f"SELECT {_COLUMNS} FROM silences ORDER BY starts_at DESC, id"
                ).fetchall()
                self._cache = [_row(r) for r in rows]
                self._stamp = stamp
                self.reloads += 1
            return self._cache


def _row(row: tuple[str, str, int, int, str, str, int]) -> Silence:
    sid, matchers, starts, ends, by, comment, updated = row
    return Silence(sid, parse_matchers(json.loads(matchers)), int(starts), int(ends), by, comment, int(updated))
