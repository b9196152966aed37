"""Notify: the notification pipeline (routing, grouping, inhibition, silences, dedup) and receivers.

Owns turning :class:`~tunewatch.alert.model.Alert` state changes into notifications delivered exactly once
per decision to Slack, email, webhooks, PagerDuty, Opsgenie, Teams, Discord, Telegram and Alertmanager.
One module per stage, as in Alertmanager:
``config`` (YAML), ``matchers``, ``route`` (routing tree), ``group`` (aggregation groups), ``inhibit``,
``silence``, ``timeintervals``, ``nflog`` (notification log), ``outbox`` (undelivered notifications),
``deliver`` (retries, backoff, rate limits), ``dispatcher`` (the pipeline), ``receivers/`` (one module per
integration, settings in ``receiver_config``, ``http_config`` in ``httpconfig``), ``templates``
(Alertmanager's templates, on :mod:`tunewatch.gotemplate`). See ``docs/notifications.md``.
Imports ``alert.model``, ``alert.log``, ``alert.rules`` (YAML line numbers), ``gotemplate``, ``store``, ``clock``
and ``errors`` only. ``runner`` runs it in a live service (:class:`BackgroundNotifier` is the service's
``on_alert`` callback).
"""

from tunewatch.notify.config import NotifyConfig, load_config
from tunewatch.notify.dispatcher import FlushReport, NotificationPipeline, PipelineStats
from tunewatch.notify.matchers import Matcher, parse_matchers
from tunewatch.notify.runner import BackgroundNotifier
from tunewatch.notify.silence import Silence, SilenceError, SilenceStore

__all__ = [
    "BackgroundNotifier",
    "FlushReport",
    "Matcher",
    "NotificationPipeline",
    "NotifyConfig",
    "PipelineStats",
    "Silence",
    "SilenceError",
    "SilenceStore",
    "load_config",
    "parse_matchers",
]
