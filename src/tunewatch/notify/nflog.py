"""The notification log: what each receiver integration was last *successfully* sent for each alert group.

An entry is keyed by ``group key | receiver | integration`` and records the fingerprints of the alerts that
were firing and resolved in the last delivered notification, and when. The dedup decision
(:func:`needs_update`) is Alertmanager's: notify when new alerts fire, when alerts resolve (if the integration
sends resolved notifications), when everything resolved after a firing notification, or when the repeat
interval has passed. Entries are written only once a notification is delivered, never when it is queued.

>>> needs_update(None, firing={"a"}, resolved=set(), send_resolved=True, repeat_ms=3_600_000, now_ms=0)
True
>>> e = LogEntry("k", frozenset({"a"}), frozenset(), ts_ms=0)
>>> needs_update(e, firing={"a"}, resolved=set(), send_resolved=True, repeat_ms=3_600_000, now_ms=60_000)
False
>>> needs_update(e, firing={"a"}, resolved=set(), send_resolved=True, repeat_ms=3_600_000, now_ms=3_600_001)
True
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Set
from dataclasses import dataclass

from tunewatch.store.sqlite import migrate

MIGRATIONS = [
    """
    CREATE TABLE nflog (
        key TEXT PRIMARY KEY,
        firing TEXT NOT NULL,
        resolved TEXT NOT NULL,
        ts_ms INTEGER NOT NULL
    );
    """
]


@dataclass(frozen=True, slots=True)
class LogEntry:
    """The last delivered notification of one group to one integration."""

    key: str
    firing: frozenset[str]
    resolved: frozenset[str]
    ts_ms: int


def needs_update(
    entry: LogEntry | None,
    *,
    firing: Set[str],
    resolved: Set[str],
    send_resolved: bool,
    repeat_ms: int,
    now_ms: int,
) -> bool:
    """Whether a group with these firing/resolved fingerprints must be notified again (Alertmanager's rule)."""
    if entry is None:
        return bool(firing)
    if not firing <= entry.firing:
        return True
    if not firing:
        # everything resolved: tell the receiver if it was told about firing alerts
        return bool(entry.firing)
    if send_resolved and not resolved <= entry.resolved:
        return True
    return entry.ts_ms + repeat_ms < now_ms


class NotificationLog:
    """The ``nflog`` table."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        migrate(conn, "notify.nflog", MIGRATIONS)

    def get(self, key: str) -> LogEntry | None:
        """The entry for ``key``, if any."""
        row = self._conn.execute("SELECT firing, resolved, ts_ms FROM nflog WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        return LogEntry(key, frozenset(json.loads(row[0])), frozenset(json.loads(row[1])), int(row[2]))

    def record(self, entry: LogEntry) -> None:
        """Store ``entry`` (call inside the transaction that marks the notification delivered)."""
        self._conn.execute(
            "INSERT INTO nflog (key, firing, resolved, ts_ms) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET firing = excluded.firing, resolved = excluded.resolved, "
            "ts_ms = excluded.ts_ms",
            (entry.key, json.dumps(sorted(entry.firing)), json.dumps(sorted(entry.resolved)), entry.ts_ms),
        )

    def gc(self, now_ms: int, retention_ms: int) -> int:
        """Forget entries older than ``retention_ms``; return how many."""
        return self._conn.execute("DELETE FROM nflog WHERE ts_ms < ?", (now_ms - retention_ms,)).rowcount
