"""The outbox: notifications decided by the dispatcher but not yet delivered, persisted in SQLite.

A notification is written here when a group flush decides it must be sent, and leaves the ``pending`` state
only when delivery succeeds (``sent``, recorded in the notification log in the same transaction), when its
integration chose not to send it (``skipped``: only resolved alerts for an integration without
``send_resolved``), or when it fails for good (``failed``: a permanent error or older than ``max_age``). After
a restart, pending notifications are picked up again, in order.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from tunewatch.store.sqlite import migrate

OutboxStatus = Literal["pending", "sent", "skipped", "failed"]

MIGRATIONS = [
    """
    CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        key TEXT NOT NULL,
        receiver TEXT NOT NULL,
        integration TEXT NOT NULL,
        idx INTEGER NOT NULL,
        group_key TEXT NOT NULL,
        group_labels TEXT NOT NULL,
        alerts TEXT NOT NULL,
        firing TEXT NOT NULL,
        resolved TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        next_attempt_ms INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        rounds INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL DEFAULT 'pending',
        last_error TEXT NOT NULL DEFAULT '',
        done_ms INTEGER
    );
    CREATE INDEX outbox_pending ON outbox (status, next_attempt_ms);
    CREATE INDEX outbox_key ON outbox (key, status);
    """
]

#: a busy database is retried this many times, this long apart (5 s in all)
_BUSY_RETRIES = 100
_BUSY_PAUSE_S = 0.05

_COLUMNS = (
    "id, key, receiver, integration, idx, group_key, group_labels, alerts, firing, resolved, created_ms, "
    "next_attempt_ms, attempts, rounds, status, last_error"
)


@dataclass(slots=True)
class Notification:
    """One notification of one alert group to one receiver integration."""

    key: str  #: nflog key: ``group_key|receiver|integration/idx``
    receiver: str
    integration: str  #: ``slack``, ``email``, ``webhook`` or ``alertmanager``
    index: int  #: position in the receiver's ``<integration>_configs`` list
    group_key: str
    group_labels: dict[str, str]
    alerts: list[dict[str, Any]]  #: ``Alert.to_dict()`` of every alert in the notification (firing first)
    firing: frozenset[str]
    resolved: frozenset[str]
    created_ms: int
    next_attempt_ms: int = 0
    attempts: int = 0
    rounds: int = 0
    status: OutboxStatus = "pending"
    last_error: str = ""
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def integration_key(self) -> str:
        """``receiver|integration/idx``: deliveries to one integration happen in order."""
        return f"{self.receiver}|{self.integration}/{self.index}"


class Outbox:
    """The ``outbox`` table."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        migrate(conn, "notify.outbox", MIGRATIONS)

    def add(self, n: Notification) -> None:
        """Queue a notification.

        A busy database that SQLite reports at once, without waiting out the busy timeout (a stale WAL snapshot
        while another connection of the process commits its alert log: seen about once in 20 runs of the
        distributed worker under CPU load), is retried for up to 5 s: a notification is never dropped for it.
        """
        row = (
            n.id, n.key, n.receiver, n.integration, n.index, n.group_key, json.dumps(n.group_labels),
            json.dumps(n.alerts), json.dumps(sorted(n.firing)), json.dumps(sorted(n.resolved)), n.created_ms,
            n.next_attempt_ms, n.attempts, n.rounds, n.status, n.last_error,
        )  # fmt: skip
        for attempt in range(_BUSY_RETRIES + 1):
            try:
                self._conn.execute(f"INSERT INTO outbox ({_COLUMNS}) VALUES ({', '.join('?' * 16)})", row)
                return
            except sqlite3.OperationalError as exc:
                if (getattr(exc, "sqlite_errorcode", 0) & 0xFF) != sqlite3.SQLITE_BUSY or attempt == _BUSY_RETRIES:
                    raise
                time.sleep(_BUSY_PAUSE_S)

    def latest_pending(self, key: str) -> Notification | None:
        """The newest pending notification for an nflog key."""
        row = self._conn.execute(
            f"SELECT {_COLUMNS} FROM outbox WHERE key = ? AND status = 'pending' ORDER BY seq DESC LIMIT 1", (key,)
        ).fetchone()
        return _row(row) if row else None

    def pending(self, *, due_by_ms: int | None = None) -> list[Notification]:
        """Pending notifications in queue order (all, or only the integrations with one due by ``due_by_ms``).

        For an integration with any due notification, all of its pending notifications are returned, so a
        caller delivering in order never overtakes an older one.
        """
        rows = self._conn.execute(f"SELECT {_COLUMNS} FROM outbox WHERE status = 'pending' ORDER BY seq").fetchall()
        out = [_row(r) for r in rows]
        if due_by_ms is None:
            return out
        due = {n.integration_key for n in out if n.next_attempt_ms <= due_by_ms}
        return [n for n in out if n.integration_key in due]

    def history(self, receiver: str | None = None) -> list[Notification]:
        """Finished and pending notifications in the order they were decided (optionally for one receiver)."""
        query = f"SELECT {_COLUMNS} FROM outbox" + (" WHERE receiver = ?" if receiver else "") + " ORDER BY seq"
        return [_row(r) for r in self._conn.execute(query, (receiver,) if receiver else ()).fetchall()]

    def count(self, status: OutboxStatus = "pending") -> int:
        """How many notifications are in ``status``."""
        return int(self._conn.execute("SELECT COUNT(*) FROM outbox WHERE status = ?", (status,)).fetchone()[0])

    def finish(self, n: Notification, status: OutboxStatus, now_ms: int, error: str = "") -> None:
        """Mark a notification sent, skipped or failed."""
        self._conn.execute(
            "UPDATE outbox SET status = ?, attempts = ?, rounds = ?, last_error = ?, done_ms = ? WHERE id = ?",
            (status, n.attempts, n.rounds, error, now_ms, n.id),
        )

    def reschedule(self, n: Notification, next_attempt_ms: int, error: str) -> None:
        """Keep a notification pending and try again at ``next_attempt_ms``."""
        self._conn.execute(
            "UPDATE outbox SET next_attempt_ms = ?, attempts = ?, rounds = ?, last_error = ? WHERE id = ?",
            (next_attempt_ms, n.attempts, n.rounds, error, n.id),
        )

    def gc(self, now_ms: int, retention_ms: int) -> int:
        """Delete finished notifications older than ``retention_ms``; return how many."""
        return self._conn.execute(
            "DELETE FROM outbox WHERE status != 'pending' AND done_ms < ?", (now_ms - retention_ms,)
        ).rowcount


def _row(row: tuple[Any, ...]) -> Notification:
    (nid, key, receiver, integration, idx, group_key, group_labels, alerts, firing, resolved, created, next_ms,
     attempts, rounds, status, error) = row  # fmt: skip
    return Notification(
        key=key, receiver=receiver, integration=integration, index=int(idx), group_key=group_key,
        group_labels=json.loads(group_labels), alerts=json.loads(alerts), firing=frozenset(json.loads(firing)),
        resolved=frozenset(json.loads(resolved)), created_ms=int(created), next_attempt_ms=int(next_ms),
        attempts=int(attempts), rounds=int(rounds), status=status, last_error=error, id=nid,
    )  # fmt: skip
