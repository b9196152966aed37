"""The pipeline's view of current alerts (latest state per fingerprint), persisted so a restart can regroup them."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable

from tunewatch.alert.model import Alert
from tunewatch.notify.fingerprints import alert_fingerprint
from tunewatch.store.sqlite import migrate

MIGRATIONS = [
    """
    CREATE TABLE notify_alerts (
        fingerprint TEXT PRIMARY KEY,
        alert TEXT NOT NULL,
        updated_ms INTEGER NOT NULL
    );
    """
]


class AlertStore:
    """Latest state of each alert the pipeline holds in an aggregation group."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        migrate(conn, "notify.alerts", MIGRATIONS)
        self.alerts: dict[str, Alert] = {}

    def load(self) -> list[Alert]:
        """Read the persisted alerts (after a restart)."""
        rows = self._conn.execute("SELECT alert FROM notify_alerts ORDER BY updated_ms").fetchall()
        self.alerts = {}
        for (text,) in rows:
            alert = Alert.from_dict(json.loads(text))
            self.alerts[alert_fingerprint(alert)] = alert
        return list(self.alerts.values())

    def put(self, alerts: Iterable[Alert], now_ms: int) -> None:
        """Store new states."""
        rows = []
        for alert in alerts:
            self.alerts[alert_fingerprint(alert)] = alert
            rows.append((alert_fingerprint(alert), json.dumps(alert.to_dict()), now_ms))
        self._conn.executemany(
            "INSERT INTO notify_alerts (fingerprint, alert, updated_ms) VALUES (?, ?, ?) ON CONFLICT(fingerprint) "
            "DO UPDATE SET alert = excluded.alert, updated_ms = excluded.updated_ms",
            rows,
        )

    def delete(self, fingerprints: Iterable[str]) -> None:
        """Forget alerts no group holds any more."""
        fps = [fp for fp in fingerprints if self.alerts.pop(fp, None) is not None]
        self._conn.executemany("DELETE FROM notify_alerts WHERE fingerprint = ?", [(fp,) for fp in fps])

    def firing(self) -> list[Alert]:
        """Alerts currently firing (inhibition sources)."""
        return [a for a in self.alerts.values() if a.status == "firing"]
