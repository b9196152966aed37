"""Silences: time-bounded label matchers that mute alerts.

Stored in SQLite, so the CLI and a running pipeline share them.

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
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from tunewatch.errors import TunewatchError
from tunewatch.notify.matchers import Matcher, matches_all, parse_matchers
from tunewatch.store.sqlite import migrate, transaction

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
    """
]


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
    """Silences in the ``silences`` table of a tunewatch database."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        migrate(conn, "notify.silences", MIGRATIONS)

    def add(
        self,
        matchers: Sequence[Matcher],
        *,
        starts_at: int,
        ends_at: int,
        created_by: str,
        comment: str,
        now_ms: int,
    ) -> Silence:
        """Create a silence; it must have matchers, end after it starts and end in the future."""
        if not matchers:
            raise SilenceError("a silence needs at least one matcher, e.g. market=BR")
        if all(m.matches({}) for m in matchers):
            raise SilenceError("at least one matcher must not match an empty label value (it would silence everything)")
        if ends_at <= starts_at:
            raise SilenceError("a silence must end after it starts")
        if ends_at <= now_ms:
            raise SilenceError("a silence must end in the future")
        silence = Silence(uuid.uuid4().hex, tuple(matchers), starts_at, ends_at, created_by, comment, now_ms)
        self._conn.execute(
            "INSERT INTO silences (id, matchers, starts_at, ends_at, created_by, comment, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (silence.id, json.dumps([str(m) for m in matchers]), starts_at, ends_at, created_by, comment, now_ms),
        )
        return silence

    def get(self, silence_id: str) -> Silence | None:
        """The silence with this id, or with this unique id prefix."""
        rows = self._conn.execute(
            "SELECT * FROM silences WHERE id LIKE ? ESCAPE '\\' LIMIT 2",
            (silence_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%",),
        ).fetchall()
        return _row(rows[0]) if len(rows) == 1 else None

    def find(self, now_ms: int, state: SilenceState | None = None) -> list[Silence]:
        """All silences (or those in ``state``), newest first."""
        rows = self._conn.execute("SELECT * FROM silences ORDER BY starts_at DESC, id").fetchall()
        out = [_row(r) for r in rows]
        return [s for s in out if state is None or s.state(now_ms) == state]

    def active(self, now_ms: int) -> list[Silence]:
        """Silences active at ``now_ms``."""
        rows = self._conn.execute(
            "SELECT * FROM silences WHERE starts_at <= ? AND ends_at > ?", (now_ms, now_ms)
        ).fetchall()
        return [_row(r) for r in rows]

    def expire(self, silence_id: str, now_ms: int) -> Silence:
        """End a silence now (id or unique prefix); raise :class:`SilenceError` if unknown or already expired."""
        with transaction(self._conn):
            silence = self.get(silence_id)
            if silence is None:
                raise SilenceError(f"no silence with id {silence_id!r}")
            if silence.state(now_ms) == "expired":
                raise SilenceError(f"silence {silence.id} has already expired")
            starts = min(silence.starts_at, now_ms)
            self._conn.execute(
                "UPDATE silences SET starts_at = ?, ends_at = ?, updated_at = ? WHERE id = ?",
                (starts, now_ms, now_ms, silence.id),
            )
        expired = self.get(silence.id)
        assert expired is not None
        return expired

    def gc(self, now_ms: int, retention_ms: int) -> int:
        """Delete silences that expired more than ``retention_ms`` ago; return how many."""
        cur = self._conn.execute("DELETE FROM silences WHERE ends_at < ?", (now_ms - retention_ms,))
        return cur.rowcount


def _row(row: tuple[str, str, int, int, str, str, int]) -> Silence:
    sid, matchers, starts, ends, by, comment, updated = row
    return Silence(sid, parse_matchers(json.loads(matchers)), int(starts), int(ends), by, comment, int(updated))
