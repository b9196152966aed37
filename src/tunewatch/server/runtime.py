"""The composition root of a tunewatch service process: every component built once, from settings, and wired.

``tunewatch serve``, ``tunewatch run``, the uvicorn factory (:mod:`tunewatch.server.entry`) and the distributed
worker all build their process here, from settings settled by :func:`~tunewatch.server.settings.process_settings`
(the one place their default paths are worked out), so they cannot differ in what they own. One database holds the state
(alerts, silences, API keys, quarantine, audit trail); one :class:`~tunewatch.notify.silence.SilenceStore` and
one :class:`~tunewatch.alert.log.AlertLog` (:mod:`tunewatch.server.alerting`, which the distributed worker builds
too) are handed to the service (its HTTP API) and to the notification pipeline alike, and the CLI reaches the same rows
through the database or the API.

>>> rt = build_runtime(ServerSettings(db=None))
>>> rt.service.silences is not None and rt.notifier is None
True
>>> rt.close()
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tunewatch.alert.log import AlertLog
from tunewatch.alert.model import Alert
from tunewatch.alert.rules import RuleSet, load_rules
from tunewatch.cache import MusicStreamingCacheManager
from tunewatch.clock import Clock
from tunewatch.notify.runner import BackgroundNotifier
from tunewatch.notify.silence import SilenceStore
from tunewatch.server.alerting import AlertSide, build_alert_side, database
from tunewatch.server.app import create_app
from tunewatch.server.ingest_http import IngestApp
from tunewatch.server.service import LiveService
from tunewatch.server.settings import ServerSettings


@dataclass
class Runtime:
    """One service process's components: the live service (pipeline, stores, metrics) and its alert side."""

    service: LiveService
    alerts: AlertSide

    @property
    def silences(self) -> SilenceStore:
        """The one silence store (API, notifier, and through the database the CLI)."""
        return self.alerts.silences

    @property
    def alert_log(self) -> AlertLog:
        """The one alert log."""
        return self.alerts.alert_log

    @property
    def notifier(self) -> BackgroundNotifier | None:
        """The notifier, when a notification config was given."""
        return self.alerts.notifier

    def app(self, *, close_on_shutdown: bool = True) -> IngestApp:
        """The HTTP application over the service; stopping it closes this runtime unless the caller closes it
        itself (``tunewatch run``, whose simulated feed outlives the HTTP server)."""
        pipeline = self.notifier.pipeline if self.notifier is not None else None
        return create_app(self.service, notifier=pipeline, on_shutdown=[self.close] if close_on_shutdown else [])

    def on_alert(self, listener: Callable[[Alert], None]) -> None:
        """Also call ``listener`` with every alert change (e.g. the CLI printing it)."""
        self.alerts.listeners.append(listener)

    def close(self) -> None:
        """Stop the notifier (a last flush; undelivered notifications stay queued) and close the stores;
        idempotent (the app closes it at shutdown, and so may the CLI)."""
        self.alerts.close()


def build_runtime(
    settings: ServerSettings,
    *,
    rules: RuleSet | None = None,
    clock: Clock | Callable[[], float] | None = None,
    notify_clock: Clock | None = None,
    notify_max_sleep_s: float = 5.0,
    cache: MusicStreamingCacheManager | None = None,
) -> Runtime:
    """Build the service process from ``settings`` (database, rule file, notification config; see
    :func:`~tunewatch.server.settings.process_settings` for the paths each kind of process defaults to).

    ``rules`` default to the settings' rule file (the built-in pack without one), loaded before anything is opened
    or started: an invalid file fails first. ``clock`` is the service's (simulated in ``tunewatch run``);
    notifications keep ``notify_clock`` (default: the wall clock), so their group and repeat intervals mean real
    time.
    """
    rules = rules if rules is not None else load_rules(settings.rules)
    holder: dict[str, LiveService] = {}

    def audit(actor: str, action: str, target: str, **details: object) -> None:
        holder["service"].audit(actor, action, target, **details)

    side = build_alert_side(settings, audit=audit, notify_clock=notify_clock, notify_max_sleep_s=notify_max_sleep_s)
    service = LiveService(
        rules, clock=clock, on_alert=side.hand_on, db=database(settings), rules_path=settings.rules,
        settings=settings, cache=cache, silences=side.silences, alert_log=side.alert_log,
    )  # fmt: skip
    holder["service"] = service
    return Runtime(service, side)
