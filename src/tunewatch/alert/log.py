"""The alert log: every alert state change, once, in one SQLite table — and the latest state per fingerprint.

One owner for alert state. The live service records each firing/resolved change here (and the rule engine's
``pending``/``inactive`` steps, :class:`Transition`, when asked); its API reads the active alerts and recent
changes from here, the notification pipeline restores its aggregation groups from here after a restart, and
``entries`` reads the whole lifecycle inactive → pending → firing → resolved of a fingerprint back in order.

The active set (latest change per fingerprint, if firing) is kept in memory and loaded at start-up: alerts
found firing then are *restored* until this process's engine fires them again (:meth:`AlertLog.settle_restored`).

>>> from tunewatch.alert.model import Alert
>>> log = AlertLog.open(":memory:")
>>> a = Alert({"alertname": "PlaysDrop", "market": "BR"}, {}, "firing", 60_000)
>>> log.record([a], now_ms=120_000)
>>> [x.labels["market"] for x in log.active()], [e.state for e in log.entries()]
(['BR'], ['firing'])
>>> log.record([Alert(a.labels, {}, "resolved", 60_000, 180_000)], now_ms=240_000)
>>> log.active(), [e.state for e in log.entries()]
([], ['firing', 'resolved'])
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tunewatch.alert.model import Alert, fingerprint
from tunewatch.store.sqlite import connect, migrate, transaction

State = Literal["inactive", "pending", "firing", "resolved"]

MIGRATIONS = [
    """
    CREATE TABLE alert_log (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        fingerprint TEXT NOT NULL,
        alertname TEXT NOT NULL,
        state TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        recorded_ms INTEGER NOT NULL,
        labels TEXT NOT NULL,
        alert TEXT
    );
    CREATE INDEX alert_log_fp ON alert_log (fingerprint, seq);
    CREATE INDEX alert_log_at ON alert_log (at_ms);
    """
]
#: tables of the three logs this one replaces (service, notifier, history): their rows are moved here once
_OLD_SERVICE_LOG = "server_alert_log"
_RETIRED = ("server_alert_log", "notify_alerts", "alert_history")
_LATEST_CHANGE = (
    "SELECT MAX(seq) FROM alert_log WHERE state IN ('firing', 'resolved') GROUP BY fingerprint"
)


@dataclass(frozen=True, slots=True)
class Transition:
    """A lifecycle step that no alert carries: a condition turned ``pending`` or fell back to ``inactive``.

    >>> log = AlertLog.open(":memory:")
    >>> log.record_transition(Transition(60_000, "pending", {"alertname": "PlaysDrop", "market": "BR"}))
    >>> [(e.state, e.alertname, e.at_ms) for e in log.entries()]
    [('pending', 'PlaysDrop', 60000)]
    """

    at_ms: int  # event time: end of the window that caused the step
    state: Literal["pending", "inactive"]
    labels: dict[str, str]

    @property
    def fingerprint(self) -> str:
        """Fingerprint of the labels the alert would carry."""
        return fingerprint(self.labels)


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One recorded state change.

    >>> from tunewatch.alert.model import Alert
    >>> log = AlertLog.open(":memory:")
    >>> log.record([Alert({"alertname": "PlaysDrop"}, {"summary": "plays down"}, "firing", 60_000)], now_ms=60_000)
    >>> (entry,) = log.entries()
    >>> entry.state, entry.labels, entry.alert["annotations"]["summary"]
    ('firing', {'alertname': 'PlaysDrop'}, 'plays down')
    """

    fingerprint: str
    alertname: str
    state: State
    at_ms: int  #: event time of the change (``fired_at``/``resolved_at`` when known)
    labels: dict[str, str]
    alert: dict[str, Any] | None = None  #: the alert's JSON form (firing/resolved), with its explanation


class AlertLog:
    """Append-only log of alert state changes with the latest-per-fingerprint view; thread-safe.

    ``keep`` bounds the log: older changes beyond it are deleted, except each fingerprint's latest one.

    >>> from tunewatch.alert.model import Alert
    >>> log = AlertLog.open(":memory:", keep=10)
    >>> log.record([Alert({"alertname": "SkipsUp", "market": "SE"}, {}, "firing", 0)], now_ms=60_000)
    >>> [a.labels["market"] for a in log.current(resolved_since_ms=0)], log.restored
    (['SE'], set())
    """

    def __init__(self, conn: sqlite3.Connection, *, keep: int = 100_000, owns_connection: bool = False) -> None:
        self._conn = conn
        self._lock = threading.RLock()
        self._keep = keep
        self._owns = owns_connection
        migrate(conn, "alert.log", MIGRATIONS)
        self._adopt_retired_tables()
        self._active: dict[str, Alert] = {a.fingerprint: a for a in self._latest(firing_only=True)}
        #: alerts found firing at start-up, which this process's rule engine has not (yet) confirmed
        self.restored: set[str] = set(self._active)

    @classmethod
    def open(cls, path: str | Path, *, keep: int = 100_000) -> AlertLog:
        """The log of the database at ``path`` (``":memory:"``: private), on its own connection."""
        return cls(connect(path, check_same_thread=False), keep=keep, owns_connection=True)

    def close(self) -> None:
        """Close the connection if this log opened it."""
        if self._owns:
            self._conn.close()

    # writes -------------------------------------------------------------------------------------------------
    def record(self, alerts: Sequence[Alert], now_ms: int) -> None:
        """Append firing/resolved changes (one transaction) and update the active set."""
        rows = [
            (a.fingerprint, a.name, a.status, _at(a), now_ms, json.dumps(a.labels), json.dumps(a.to_dict()))
            for a in alerts
        ]
        if not rows:
            return
        with self._lock:
            self._insert(rows, prune=True)
            for a in alerts:
                self.restored.discard(a.fingerprint)
                if a.status == "firing":
                    self._active[a.fingerprint] = a
                else:
                    self._active.pop(a.fingerprint, None)

    def record_transitions(self, transitions: Iterable[Transition], now_ms: int | None = None) -> int:
        """Append pending/inactive steps (recorded at ``now_ms``, default their event time); return how many."""
        rows = [
            (t.fingerprint, t.labels.get("alertname", ""), t.state, t.at_ms,
             t.at_ms if now_ms is None else now_ms, json.dumps(t.labels), None)
            for t in transitions
        ]  # fmt: skip
        with self._lock:
            self._insert(rows, prune=False)
        return len(rows)

    def record_transition(self, transition: Transition) -> None:
        """Append one pending/inactive step (usable as the engine's ``on_transition``)."""
        self.record_transitions([transition])

    def settle_restored(self, confirmed: set[str], *, expire: bool, at_ms: int | None, now_ms: int) -> list[Alert]:
        """Forget restored alerts the engine fires again (``confirmed``); with ``expire``, resolve the others.

        After a restart the rule engine starts from scratch: an alert that was firing stays active until the
        engine fires it again or, after a grace period of event time (``expire``), is resolved at ``at_ms``.
        """
        with self._lock:
            self.restored -= confirmed
            stale = [self._active[fp] for fp in self.restored if fp in self._active] if expire else []
        resolved = [
            Alert(a.labels, a.annotations, "resolved", a.starts_at, at_ms or a.starts_at, a.generator_url, a.extra)
            for a in stale
        ]
        self.record(resolved, now_ms)
        if expire:
            with self._lock:
                self.restored.clear()
        return resolved

    # reads ----------------------------------------------------------------------------------------------------
    def active(self) -> list[Alert]:
        """Alerts firing now (as of the latest recorded change of each)."""
        with self._lock:
            return list(self._active.values())

    def current(self, *, resolved_since_ms: int) -> list[Alert]:
        """The latest change of each fingerprint that is firing, or resolved and recorded at or after
        ``resolved_since_ms`` (what a notification pipeline regroups after a restart), oldest first."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT alert FROM alert_log WHERE seq IN ({_LATEST_CHANGE}) "
                "AND (state = 'firing' OR recorded_ms >= ?) ORDER BY seq",
                (resolved_since_ms,),
            ).fetchall()
        return [Alert.from_dict(json.loads(r[0])) for r in rows]

    def history(self, limit: int = 1000) -> list[Alert]:
        """The newest ``limit`` firing/resolved changes, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT alert FROM alert_log WHERE alert IS NOT NULL ORDER BY seq DESC LIMIT ?", (limit,)
            ).fetchall()
        return [Alert.from_dict(json.loads(r[0])) for r in reversed(rows)]

    def entries(
        self,
        *,
        fingerprint: str | None = None,
        alertname: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        limit: int = 1000,
    ) -> list[LogEntry]:
        """State changes in event-time order, optionally for one fingerprint or alert name and a time range."""
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
        sql = "SELECT fingerprint, alertname, state, at_ms, labels, alert FROM alert_log"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY at_ms, seq LIMIT ?"
        with self._lock:
            rows = self._conn.execute(sql, [*args, limit]).fetchall()
        return [
            LogEntry(fp, name, state, at, json.loads(labels), json.loads(alert) if alert else None)
            for fp, name, state, at, labels, alert in rows
        ]

    def ping(self) -> None:
        """Raise :class:`sqlite3.Error` if the database does not answer (readiness checks)."""
        with self._lock:
            self._conn.execute("SELECT 1").fetchone()

    # internals --------------------------------------------------------------------------------------------
    def _latest(self, *, firing_only: bool) -> list[Alert]:
        state = " AND state = 'firing'" if firing_only else ""
        rows = self._conn.execute(
            f"SELECT alert FROM alert_log WHERE seq IN ({_LATEST_CHANGE}){state} ORDER BY seq"
        ).fetchall()
        return [Alert.from_dict(json.loads(r[0])) for r in rows]

    def _insert(self, rows: list[tuple[Any, ...]], *, prune: bool) -> None:
        if not rows:
            return
        sql = (
            "INSERT INTO alert_log (fingerprint, alertname, state, at_ms, recorded_ms, labels, alert) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)"
        )
        if self._conn.in_transaction:  # part of the caller's transaction
            self._conn.executemany(sql, rows)
            return
        with transaction(self._conn):
            self._conn.executemany(sql, rows)
            low, high = self._conn.execute("SELECT MIN(seq), MAX(seq) FROM alert_log").fetchone()
            if prune and high - low > self._keep * 1.1:  # prune in steps of 10 %, not at every change
                self._conn.execute(
                    f"DELETE FROM alert_log WHERE seq <= (SELECT MAX(seq) FROM alert_log) - ? "
                    f"AND seq NOT IN ({_LATEST_CHANGE})",
                    (self._keep,),
                )

    def _adopt_retired_tables(self) -> None:
        """Move the service's former log into this one (once) and drop the tables this log replaces."""
        tables = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables & set(_RETIRED):
            return
        with transaction(self._conn):
            if _OLD_SERVICE_LOG in tables:
                old = self._conn.execute(f"SELECT alert, recorded_ms FROM {_OLD_SERVICE_LOG} ORDER BY seq").fetchall()
                alerts = [(Alert.from_dict(json.loads(text)), int(ms)) for text, ms in old]
                self._conn.executemany(
                    "INSERT INTO alert_log (fingerprint, alertname, state, at_ms, recorded_ms, labels, alert) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(a.fingerprint, a.name, a.status, _at(a), ms, json.dumps(a.labels), json.dumps(a.to_dict()))
                     for a, ms in alerts],
                )  # fmt: skip
            for table in tables & set(_RETIRED):
                self._conn.execute(f"DROP TABLE {table}")


def _at(alert: Alert) -> int:
    """Event time of a firing/resolved change: ``fired_at``/``resolved_at`` when the engine gave them."""
    if alert.status == "firing":
        return int(alert.extra.get("fired_at", alert.starts_at))
    return int(alert.extra.get("resolved_at", alert.ends_at if alert.ends_at is not None else alert.starts_at))
