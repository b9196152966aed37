"""Alert history in the embedded SQLite store: every state change of every alert, queryable afterwards.

Firing and resolved changes are :class:`~tunewatch.alert.model.Alert` objects (with their explanation); the
engine also reports the steps no alert carries (:class:`Transition`: a condition turning ``pending``, and a
pending condition falling back to ``inactive`` before its ``for`` ran out), so the whole lifecycle
inactive → pending → firing → resolved of a fingerprint can be read back in order.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from tunewatch.alert.model import Alert, fingerprint
from tunewatch.store.sqlite import migrate, transaction

State = Literal["inactive", "pending", "firing", "resolved"]

MIGRATIONS = [
    """
    CREATE TABLE alert_history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        fingerprint TEXT NOT NULL,
        alertname TEXT NOT NULL,
        state TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        starts_at_ms INTEGER,
        ends_at_ms INTEGER,
        labels TEXT NOT NULL,
        alert TEXT
    );
    CREATE INDEX alert_history_fp ON alert_history (fingerprint, at_ms);
    CREATE INDEX alert_history_at ON alert_history (at_ms);
    """
]


@dataclass(frozen=True, slots=True)
class Transition:
    """A lifecycle step that no alert carries: a condition turned ``pending`` or fell back to ``inactive``."""

    at_ms: int  # event time: end of the window that caused the step
    state: Literal["pending", "inactive"]
    labels: dict[str, str]

    @property
    def fingerprint(self) -> str:
        """Fingerprint of the labels the alert would carry."""
        return fingerprint(self.labels)


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One recorded state change."""

    fingerprint: str
    alertname: str
    state: State
    at_ms: int
    labels: dict[str, str]
    starts_at_ms: int | None = None
    ends_at_ms: int | None = None
    alert: dict[str, Any] | None = None  # the alert's JSON form (firing/resolved), with its explanation


class AlertHistory:
    """Append-only log of alert state changes in a SQLite connection shared with other components."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        migrate(conn, "alert.history", MIGRATIONS)

    def record_alerts(self, alerts: Iterable[Alert]) -> int:
        """Record firing/resolved changes (time: ``fired_at``/``resolved_at`` when known); return how many."""
        rows = []
        for a in alerts:
            if a.status == "firing":
                at = int(a.extra.get("fired_at", a.starts_at))
            else:
                at = int(a.extra.get("resolved_at", a.ends_at if a.ends_at is not None else a.starts_at))
            rows.append(
                (a.fingerprint, a.name, a.status, at, a.starts_at, a.ends_at, json.dumps(a.labels),
                 json.dumps(a.to_dict()))
            )  # fmt: skip
        self._insert(rows)
        return len(rows)

    def record_transitions(self, transitions: Iterable[Transition]) -> int:
        """Record pending/inactive steps; return how many."""
        rows = [
            (t.fingerprint, t.labels.get("alertname", ""), t.state, t.at_ms, None, None, json.dumps(t.labels), None)
            for t in transitions
        ]
        self._insert(rows)
        return len(rows)

    def record_transition(self, transition: Transition) -> None:
        """Record one pending/inactive step (usable as the engine's ``on_transition``)."""
        self.record_transitions([transition])

    def entries(
        self,
        *,
        fingerprint: str | None = None,
        alertname: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        limit: int = 1000,
    ) -> list[HistoryEntry]:
        """State changes in time order, optionally for one fingerprint or alert name and a time range."""
        where, args = [], []
        for clause, value in (
            ("fingerprint = ?", fingerprint),
            ("alertname = ?", alertname),
            ("at_ms >= ?", since_ms),
            ("at_ms < ?", until_ms),
        ):
            if value is not None:
                where.append(clause)
                args.append(value)
        sql = "SELECT fingerprint, alertname, state, at_ms, starts_at_ms, ends_at_ms, labels, alert FROM alert_history"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY at_ms, id LIMIT ?"
        rows = self._conn.execute(sql, [*args, limit]).fetchall()
        return [
            HistoryEntry(fp, name, state, at, json.loads(labels), start, end, json.loads(alert) if alert else None)
            for fp, name, state, at, start, end, labels, alert in rows
        ]

    def _insert(self, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        sql = (
            "INSERT INTO alert_history (fingerprint, alertname, state, at_ms, starts_at_ms, ends_at_ms, labels, alert)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        )
        if self._conn.in_transaction:  # part of the caller's transaction
            self._conn.executemany(sql, rows)
            return
        with transaction(self._conn):
            self._conn.executemany(sql, rows)
