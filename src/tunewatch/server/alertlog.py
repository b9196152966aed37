"""The service's alert log in SQLite: every state change, and from it the alerts firing now (survives restarts)."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence

from tunewatch.alert.model import Alert
from tunewatch.store.sqlite import migrate, transaction

MIGRATIONS = [
    """
    CREATE TABLE server_alert_log (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        fingerprint TEXT NOT NULL,
        status TEXT NOT NULL,
        alert TEXT NOT NULL,
        recorded_ms INTEGER NOT NULL
    );
    CREATE INDEX server_alert_log_fp ON server_alert_log (fingerprint, seq);
    """
]


class AlertLog:
    """Append-only log of alert state changes; the active set is the latest change per fingerprint, if firing."""

    def __init__(self, conn: sqlite3.Connection, *, keep: int = 10_000) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self._keep = keep
        migrate(conn, "server.alert_log", MIGRATIONS)
        self._active: dict[str, Alert] = {a.fingerprint: a for a in self._load_active()}
        #: alerts found firing at start-up, which this process's rule engine has not (yet) confirmed
        self.restored: set[str] = set(self._active)

    def _load_active(self) -> list[Alert]:
        rows = self._conn.execute(
            "SELECT alert FROM server_alert_log WHERE seq IN (SELECT MAX(seq) FROM server_alert_log "
            "GROUP BY fingerprint) AND status = 'firing' ORDER BY seq"
        ).fetchall()
        return [Alert.from_dict(json.loads(r[0])) for r in rows]

    def record(self, alerts: Sequence[Alert], now_ms: int) -> None:
        """Append state changes (one transaction) and update the active set."""
        rows = [(a.fingerprint, a.status, json.dumps(a.to_dict()), now_ms) for a in alerts]
        if not rows:
            return
        with self._lock, transaction(self._conn):
            self._conn.executemany(
                "INSERT INTO server_alert_log (fingerprint, status, alert, recorded_ms) VALUES (?, ?, ?, ?)", rows
            )
            self._conn.execute(
                "DELETE FROM server_alert_log WHERE seq <= (SELECT MAX(seq) FROM server_alert_log) - ? "
                "AND seq NOT IN (SELECT MAX(seq) FROM server_alert_log GROUP BY fingerprint)",
                (self._keep,),
            )
            for a in alerts:
                self.restored.discard(a.fingerprint)
                if a.status == "firing":
                    self._active[a.fingerprint] = a
                else:
                    self._active.pop(a.fingerprint, None)

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

    def active(self) -> list[Alert]:
        """Alerts firing now (as of the latest recorded change of each)."""
        with self._lock:
            return list(self._active.values())

    def history(self, limit: int = 1000) -> list[Alert]:
        """The newest ``limit`` state changes, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT alert FROM server_alert_log ORDER BY seq DESC LIMIT ?", (limit,)
            ).fetchall()
        return [Alert.from_dict(json.loads(r[0])) for r in reversed(rows)]
