"""The composition root of a tunewatch service process: every component built once, from settings, and wired.

``tunewatch serve``, ``tunewatch run``, the uvicorn factory (:mod:`tunewatch.server.entry`) and the distributed
worker all build their process here, so they cannot differ in what they own. One database holds the state
(alerts, silences, API keys, quarantine, audit trail); one :class:`~tunewatch.notify.silence.SilenceStore` and
one :class:`~tunewatch.alert.log.AlertLog` are handed to the service (its HTTP API) and to the notification
pipeline alike, and the CLI reaches the same rows
through the database or the API.

>>> rt = build_runtime(ServerSettings(db=None))
>>> rt.service.silences is not None and rt.notifier is None
True
>>> rt.close()
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tunewatch.alert.log import AlertLog
from tunewatch.alert.model import Alert
from tunewatch.alert.rules import RuleSet
from tunewatch.cache import MusicStreamingCacheManager
from tunewatch.notify.clock import Clock
from tunewatch.notify.dispatcher import NotificationPipeline
from tunewatch.notify.runner import BackgroundNotifier
from tunewatch.notify.silence import SilenceStore
from tunewatch.server.app import create_app
from tunewatch.server.ingest_http import IngestApp
from tunewatch.server.service import LiveService, open_silences
from tunewatch.server.settings import ServerSettings

MEMORY = ":memory:"


@dataclass
class Runtime:
    """One service process's components: the live service (pipeline, stores, metrics) and its notifier."""

    service: LiveService
    silences: SilenceStore
    alert_log: AlertLog
    notifier: BackgroundNotifier | None
    _listeners: list[Callable[[Alert], None]] = field(default_factory=list)

    def app(self) -> IngestApp:
        """The HTTP application over the service; stopping it closes this runtime."""
        pipeline = self.notifier.pipeline if self.notifier is not None else None
        return create_app(self.service, notifier=pipeline, on_shutdown=[self.close])

    def on_alert(self, listener: Callable[[Alert], None]) -> None:
        """Also call ``listener`` with every alert change (e.g. the CLI printing it)."""
        self._listeners.append(listener)

    def close(self) -> None:
        """Stop the notifier (a last flush; undelivered notifications stay queued) and close the silence store."""
        if self.notifier is not None:
            self.notifier.stop()
            self.notifier = None
        self.alert_log.close()
        self.silences.close()  # idempotent: the app closes it, and so may the CLI


def notify_database(settings: ServerSettings, db: str) -> str:
    """Where the notification log and outbox live: ``notify_db``, else the service's database (memory: memory)."""
    return str(settings.notify_db) if settings.notify_db is not None else db


def build_runtime(
    settings: ServerSettings,
    *,
    rules: RuleSet | None = None,
    clock: Callable[[], float] = time.time,
    notify_clock: Clock | None = None,
    notify_max_sleep_s: float = 5.0,
    cache: MusicStreamingCacheManager | None = None,
) -> Runtime:
    """Build the service process from ``settings`` (database, rule file, notification config).

    ``clock`` is the service's (simulated in ``tunewatch run``); notifications keep ``notify_clock`` (default: the
    wall clock), so their group and repeat intervals mean real time.
    """
    db = str(settings.db) if settings.db is not None else MEMORY
    listeners: list[Callable[[Alert], None]] = []
    holder: dict[str, LiveService] = {}

    def audit(actor: str, action: str, target: str, **details: object) -> None:
        holder["service"].audit(actor, action, target, **details)

    silences = open_silences(db, settings, audit)
    alert_log = AlertLog.open(db)
    notifier = None
    if settings.notify_config is not None:
        pipeline = NotificationPipeline.from_config(
            settings.notify_config, notify_database(settings, db), notify_clock, silences=silences,
            alert_log=alert_log,
        )  # fmt: skip
        notifier = BackgroundNotifier(pipeline, max_sleep_s=notify_max_sleep_s).start()

    def on_alert(alert: Alert) -> None:
        for listener in listeners:
            listener(alert)
        if notifier is not None:
            notifier(alert)

    service = LiveService(
        rules, clock=clock, on_alert=on_alert, db=db, rules_path=settings.rules, settings=settings, cache=cache,
        silences=silences, alert_log=alert_log,
    )  # fmt: skip
    holder["service"] = service
    return Runtime(service, silences, alert_log, notifier, listeners)
