"""The alert side of a tunewatch process, built once from settings: the one alert log, the one silence store and
the notification pipeline reading both — for the HTTP service (:mod:`tunewatch.server.runtime`) and for the
distributed worker alike. Needs no web framework (the worker runs without the ``server`` extra).

>>> side = build_alert_side(ServerSettings(db=None))
>>> side.notifier is None and side.silences.find(0) == []
True
>>> side.close()
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tunewatch.alert.log import AlertLog
from tunewatch.alert.model import Alert
from tunewatch.clock import Clock
from tunewatch.notify.dispatcher import NotificationPipeline
from tunewatch.notify.runner import BackgroundNotifier
from tunewatch.notify.silence import SilenceStore
from tunewatch.security.audit import Auditor
from tunewatch.server.settings import ServerSettings

MEMORY = ":memory:"


@dataclass
class AlertSide:
    """One process's alert log, silence store and notifier, and who else hears of each alert change."""

    alert_log: AlertLog
    silences: SilenceStore
    notifier: BackgroundNotifier | None
    listeners: list[Callable[[Alert], None]] = field(default_factory=list)

    def hand_on(self, alert: Alert) -> None:
        """Tell the listeners and the notifier of an alert change (already recorded in the log)."""
        for listener in self.listeners:
            listener(alert)
        if self.notifier is not None:
            self.notifier(alert)

    def emit(self, alert: Alert, now_ms: int | None = None) -> None:
        """Record an alert change in the log, then hand it on (a process whose pipeline does not record it)."""
        self.alert_log.record([alert], int(time.time() * 1000) if now_ms is None else now_ms)
        self.hand_on(alert)

    def close(self) -> None:
        """Stop the notifier (a last flush; undelivered notifications stay queued), close the stores; idempotent."""
        if self.notifier is not None:
            self.notifier.stop()
            self.notifier = None
        self.alert_log.close()
        self.silences.close()


def database(settings: ServerSettings) -> str:
    """The process's database: ``db``, else a private in-memory one."""
    return str(settings.db) if settings.db is not None else MEMORY


def build_alert_side(
    settings: ServerSettings,
    *,
    audit: Auditor | None = None,
    notify_clock: Clock | None = None,
    notify_max_sleep_s: float = 5.0,
) -> AlertSide:
    """Open the alert log and silence store of ``settings.db`` and, with ``notify_config``, start the notifier
    (its notification log and outbox in ``notify_db``, else the same database). ``audit`` records silence
    changes; notifications keep ``notify_clock`` (default: the wall clock)."""
    db = database(settings)
    silences = SilenceStore.open(db, max_ms=settings.max_silence_ms, audit=audit)
    alert_log = AlertLog.open(db)
    notifier = None
    if settings.notify_config is not None:
        store = str(settings.notify_db) if settings.notify_db is not None else db
        pipeline = NotificationPipeline.from_config(
            settings.notify_config, store, notify_clock, silences=silences, alert_log=alert_log,
            external_url=settings.served_url,
        )
        notifier = BackgroundNotifier(pipeline, max_sleep_s=notify_max_sleep_s).start()
    return AlertSide(alert_log, silences, notifier)
