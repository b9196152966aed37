"""The notification pipeline: route → group → (at each group flush) inhibit → silence → dedup → outbox → deliver.

Time comes from an injected clock or from the ``now_ms`` the caller passes (event time in replay), so the
whole pipeline runs in simulated time in tests. Group flushes that fall due between two calls are run at
their own due times, in order, so a replay that jumps forward behaves like a live run.

Example (dry run: nothing is delivered, notifications are only counted)::

    >>> from tunewatch.alert.model import Alert, format_time
    >>> from tunewatch.notify.config import NotifyConfig, load_config
    >>> cfg = NotifyConfig.from_yaml('''
    ... route: {receiver: team, group_by: [alertname], group_wait: 30s, group_interval: 5m, repeat_interval: 4h}
    ... receivers: [{name: team, webhook_configs: [{url: "http://127.0.0.1:9/hook"}]}]
    ... ''')
    >>> pipe = NotificationPipeline(cfg, dry_run=True)
    >>> a = Alert({"alertname": "HighFailureRate", "market": "BR"}, {"summary": "failures"}, "firing", 0)
    >>> b = Alert({"alertname": "HighFailureRate", "market": "AR"}, {"summary": "failures"}, "firing", 10_000)
    >>> pipe.process([a], now_ms=0); pipe.process([b], now_ms=10_000)
    >>> pipe.flush(now_ms=60_000).sent
    {'team': 1}
    >>> pipe.close()
"""

from __future__ import annotations

import heapq
import logging
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from tunewatch.alert.log import AlertLog
from tunewatch.alert.model import Alert, format_time
from tunewatch.clock import Clock, SystemClock
from tunewatch.notify.config import NotifyConfig, load_config
from tunewatch.notify.deliver import Deliverer, Outcome, Result, alerts_to_send
from tunewatch.notify.fingerprints import alert_fingerprint
from tunewatch.notify.group import AggregationGroup, group_key
from tunewatch.notify.inhibit import InhibitionIndex, Inhibitor
from tunewatch.notify.message import with_generator_url
from tunewatch.notify.nflog import LogEntry, NotificationLog, needs_update
from tunewatch.notify.outbox import Notification, Outbox
from tunewatch.notify.receivers import build_integrations, integration_slots
from tunewatch.notify.route import Route
from tunewatch.notify.silence import Silence, SilenceStore
from tunewatch.store.sqlite import connect, transaction

log = logging.getLogger(__name__)

#: how long finished notifications, nflog entries and expired silences are kept (Alertmanager: 120 h)
RETENTION_MS = 120 * 3_600_000
_GC_EVERY_MS = 3_600_000
#: resolved alerts recorded this recently are regrouped after a restart (the nflog keeps them from repeating)
RESTORE_RESOLVED_MS = 6 * 3_600_000


@dataclass(slots=True)
class FlushReport:
    """What one :meth:`NotificationPipeline.flush` did."""

    queued: dict[str, int] = field(default_factory=dict)  #: notifications decided, per receiver
    sent: dict[str, int] = field(default_factory=dict)  #: notifications delivered (or counted, in dry run)
    failed: dict[str, int] = field(default_factory=dict)  #: given up (permanent error or too old)
    retrying: int = 0  #: delivery rounds that failed and will be retried
    pending: int = 0  #: notifications left in the outbox


@dataclass(slots=True)
class PipelineStats:
    """Cumulative counts since the pipeline was created."""

    alerts_received: int = 0
    notifications: Counter[str] = field(default_factory=Counter)  #: decided, per receiver
    sent: Counter[str] = field(default_factory=Counter)  #: delivered (or counted, in dry run), per receiver
    failed: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)  #: only resolved alerts for a no-send_resolved integration
    silenced: int = 0  #: alerts left out of a group flush by a silence
    inhibited: int = 0  #: alerts left out of a group flush by an inhibition rule
    muted: int = 0  #: group flushes that sent nothing because of the route's mute/active time intervals

    @property
    def total_sent(self) -> int:
        """Notifications delivered over all receivers."""
        return sum(self.sent.values())


class NotificationPipeline:
    """Alertmanager's notification pipeline over tunewatch alerts.

    ``store_path`` is the SQLite database holding the notification log and the outbox (``":memory:"`` keeps
    nothing across runs); silences are read from ``silences`` and alert changes from ``alert_log`` (a live
    service passes its own, which it records every change in), else from the same database (where the pipeline
    then records the changes it receives). With ``dry_run=True`` nothing is sent: a notification
    counts as delivered the moment it is decided (replay uses this to report notifications after grouping),
    and :meth:`Outbox.history` still lists every notification with its alerts.
    """

    def __init__(
        self, config: NotifyConfig, store_path: str | Path = ":memory:", clock: Clock | None = None, *,
        dry_run: bool = False, silences: SilenceStore | None = None, alert_log: AlertLog | None = None,
        external_url: str | None = None,
    ) -> None:  # fmt: skip
        if external_url:  # the served address, used unless the settings name an external URL
            config = config.with_external_url(external_url)
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.dry_run = dry_run
        self.stats = PipelineStats()
        self._conn = connect(store_path, check_same_thread=False)
        self._db = threading.Lock()  # serialises database writes (delivery workers report concurrently)
        self._api = threading.RLock()  # one process / group flush at a time (never held while delivering)
        self._delivering = threading.Lock()  # one delivery pass at a time
        #: the service's one silence store when given (the same one its API and the CLI use), else the database's
        self.silences = silences if silences is not None else SilenceStore(self._conn)
        self.nflog = NotificationLog(self._conn)
        self.outbox = Outbox(self._conn)
        #: the alert log: the service's (which records every change itself) when given, else this database's,
        #: where this pipeline records the changes it receives; restarts regroup alerts from it
        self.history = alert_log if alert_log is not None else AlertLog(self._conn)
        self._records = alert_log is None
        self._alerts: dict[str, Alert] = {}  # latest state of each alert an aggregation group holds
        self._route = Route.build(config.route)
        self._intervals = config.intervals()
        self._inhibitor = Inhibitor(config.inhibit_rules)
        self._slots = {r.name: integration_slots(r) for r in config.receivers}
        #: Alertmanager integrations' resend interval by (receiver, index)
        self._resend = {
            (r.name, i): c.resend_interval for r in config.receivers for i, c in enumerate(r.alertmanager_configs)
        }
        self._deliverer = None if dry_run else Deliverer(config, build_integrations(config), self.clock)
        self._groups: dict[str, AggregationGroup] = {}
        self._timers: list[tuple[int, int, str]] = []  # (due ms, seq, group key), lazily invalidated
        self._seq = 0
        self._last_gc = 0
        now = self.clock.now_ms()
        restored = self.history.current(resolved_since_ms=now - RESTORE_RESOLVED_MS)
        if restored:
            for alert in restored:
                self._alerts[alert_fingerprint(alert)] = alert
                self._insert(alert, now)
            log.info("restored %d alerts into %d groups", len(restored), len(self._groups))

    @classmethod
    def from_config(
        cls, path: str | Path, store_path: str | Path = ":memory:", clock: Clock | None = None, *,
        dry_run: bool = False, silences: SilenceStore | None = None, alert_log: AlertLog | None = None,
        external_url: str | None = None,
    ) -> NotificationPipeline:  # fmt: skip
        """Build the pipeline from an Alertmanager config file and its tunewatch settings (see
        :func:`~tunewatch.notify.config.load_config`); ``external_url`` is the served address, used as
        ``externalURL`` unless the settings name one."""
        return cls(load_config(path), store_path, clock, dry_run=dry_run, silences=silences, alert_log=alert_log,
                   external_url=external_url)  # fmt: skip

    # public API -------------------------------------------------------------------------------------------
    def on_alert(self, alert: Alert) -> None:
        """Take one alert change now and run whatever is due (an ``on_alert`` callback for the live service).

        Group flushes that fall due later (``group_wait``, ``group_interval``) need :meth:`flush` calls at
        :meth:`next_due_ms`; :class:`~tunewatch.notify.runner.BackgroundNotifier` makes them.
        """
        self.process([alert])
        self.flush()

    def process(self, alerts: Iterable[Alert], now_ms: int | None = None) -> None:
        """Take alert state changes (firing or resolved) at ``now_ms`` (default: the clock)."""
        with self._api:
            now = self.clock.now_ms() if now_ms is None else int(now_ms)
            self._flush_groups(until_ms=now - 1)  # flushes due before these alerts arrived
            batch = list(alerts)
            if not batch:
                return
            if self._records:
                with self._db:
                    self.history.record(batch, now)
            for alert in batch:
                self._alerts[alert_fingerprint(alert)] = alert
                self._insert(alert, now)
            self.stats.alerts_received += len(batch)

    def flush(self, now_ms: int | None = None) -> FlushReport:
        """Run the group flushes due by ``now_ms`` and deliver what is due; return what happened.

        Delivery runs outside the lock that :meth:`process` takes, so that a slow receiver never holds up the
        caller handing over alert changes (the live service's pipeline step); one delivery pass runs at a time.
        """
        with self._api:
            now = self.clock.now_ms() if now_ms is None else int(now_ms)
            report = FlushReport()
            before_queued, before_sent, before_failed = (
                Counter(self.stats.notifications), Counter(self.stats.sent), Counter(self.stats.failed)
            )  # fmt: skip
            self._flush_groups(until_ms=now)
        if self._deliverer is not None:
            with self._delivering:
                with self._db:
                    due = self.outbox.pending(due_by_ms=now)
                if due:
                    retrying: list[int] = [0]

                    def on_result(result: Result) -> None:
                        if result.outcome == "retry":
                            retrying[0] += 1
                        self._record(result, now)

                    self._deliverer.deliver(due, now, on_result)
                    report.retrying = retrying[0]
                with self._db:
                    report.pending = self.outbox.count("pending")
        with self._api:
            report.queued = dict(self.stats.notifications - before_queued)
            report.sent = dict(self.stats.sent - before_sent)
            report.failed = dict(self.stats.failed - before_failed)
            self._maybe_gc(now)
        return report

    def pending(self) -> int:
        """Notifications waiting in the outbox."""
        return self.outbox.count("pending")

    def next_due_ms(self) -> int | None:
        """When the next group flush or delivery retry is due (``None`` if nothing is scheduled).

        A live loop can sleep until then (or until new alerts arrive) instead of polling.
        """
        times = [g.next_flush_ms for g in self._groups.values() if g.next_flush_ms is not None]
        times += [n.next_attempt_ms for n in self.outbox.pending()] if self._deliverer is not None else []
        return min(times) if times else None

    def routes_of(self, labels: dict[str, str]) -> list[tuple[str, dict[str, str]]]:
        """The (receiver, group labels) of each route an alert with ``labels`` goes to (Alertmanager's API)."""
        return [(r.opts.receiver, r.group_labels(labels)) for r in self._route.match(labels)]

    def inhibition(self, firing: Iterable[Alert]) -> InhibitionIndex:
        """The inhibition rules applied to ``firing`` alerts as sources (for ``inhibitedBy`` in the API)."""
        return self._inhibitor.index(firing)

    def close(self) -> None:
        """Stop delivery workers and close the database."""
        if self._deliverer is not None:
            self._deliverer.close()
        self._conn.close()

    def __enter__(self) -> NotificationPipeline:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self.close()

    # grouping -----------------------------------------------------------------------------------------------
    def _insert(self, alert: Alert, now_ms: int) -> None:
        for route in self._route.match(alert.labels):
            key = group_key(route, route.group_labels(alert.labels))
            group = self._groups.get(key)
            if group is None:
                group = self._groups[key] = AggregationGroup.create(route, alert.labels)
            before = group.next_flush_ms
            group.insert(alert, now_ms)
            if group.next_flush_ms is not None and group.next_flush_ms != before:
                self._schedule(group)

    def _schedule(self, group: AggregationGroup) -> None:
        assert group.next_flush_ms is not None
        self._seq += 1
        heapq.heappush(self._timers, (group.next_flush_ms, self._seq, group.key))

    def _flush_groups(self, until_ms: int) -> None:
        silences: list[Silence] | None = None
        inhibition: InhibitionIndex | None = None
        while self._timers and self._timers[0][0] <= until_ms:
            due, _, key = heapq.heappop(self._timers)
            group = self._groups.get(key)
            if group is None or group.next_flush_ms != due:
                continue  # stale timer
            if silences is None:
                silences = [s for s in self.silences.find(due) if s.ends_at > due]  # later flushes are later
                inhibition = self._inhibitor.index([a for a in self._alerts.values() if a.status == "firing"])
            assert inhibition is not None
            self._flush_group(group, due, silences, inhibition)

    def _flush_group(self, group: AggregationGroup, now_ms: int, silences: list[Silence],
                     inhibition: InhibitionIndex) -> None:  # fmt: skip
        alerts = group.snapshot()
        shown: list[Alert] = []
        for alert in alerts:
            if any(s.mutes(alert.labels, now_ms) for s in silences):
                self.stats.silenced += 1
            elif alert.status == "firing" and inhibition.muted(alert.labels, alert_fingerprint(alert)):
                self.stats.inhibited += 1
            else:
                shown.append(alert)
        if shown and group.route.muted_at(now_ms, self._intervals):
            self.stats.muted += 1  # Alertmanager: nothing is sent or logged; the next flush tries again
        elif shown:
            self._notify(group, shown, now_ms)
        removed = group.flushed(alerts, now_ms)
        for fp in removed:
            if not any(fp in g.alerts for g in self._groups.values()):
                self._alerts.pop(fp, None)
        if group.empty:
            del self._groups[group.key]
        else:
            self._schedule(group)

    def _notify(self, group: AggregationGroup, shown: list[Alert], now_ms: int) -> None:
        receiver = group.route.opts.receiver
        firing = frozenset(alert_fingerprint(a) for a in shown if a.status == "firing")
        resolved = frozenset(alert_fingerprint(a) for a in shown if a.status == "resolved")
        payload = [with_generator_url(a.to_dict(), self.config.external_url) for a in shown]
        for kind, idx, send_resolved in self._slots.get(receiver, []):
            key = f"{group.key}|{receiver}|{kind}/{idx}"
            resend = self._resend.get((receiver, idx)) if kind == "alertmanager" else None
            pending = None if self.dry_run else self.outbox.latest_pending(key)
            if pending is not None:  # compare with what the receiver will get next; no repeats while queued
                ref: LogEntry | None = LogEntry(key, pending.firing, pending.resolved, pending.created_ms)
                repeat_ms = 2**62
            else:
                ref, repeat_ms = self.nflog.get(key), group.route.opts.repeat_interval_ms
                if resend is not None:  # an Alertmanager forgets a firing alert that is not posted again
                    repeat_ms = min(repeat_ms, resend - 1)
            if not needs_update(ref, firing=firing, resolved=resolved, send_resolved=send_resolved,
                                repeat_ms=repeat_ms, now_ms=now_ms):  # fmt: skip
                continue
            alerts = payload
            if resend is not None:  # firing alerts end 4 intervals ahead unless posted again (Prometheus' rule)
                horizon = format_time(now_ms + 4 * max(resend, group.route.opts.group_interval_ms))
                alerts = [{**a, "endsAt": horizon} if a.get("status") == "firing" else a for a in payload]
            n = Notification(
                key=key, receiver=receiver, integration=kind, index=idx, group_key=group.key,
                group_labels=dict(group.labels), alerts=alerts, firing=firing, resolved=resolved,
                created_ms=now_ms, next_attempt_ms=now_ms,
            )  # fmt: skip
            self.stats.notifications[receiver] += 1
            delivered = bool(alerts_to_send(n, send_resolved))
            outcome: Outcome = "sent" if delivered else "skipped"
            if self.dry_run:
                n.status = "sent" if delivered else "skipped"
            with self._db:
                self.outbox.add(n)
            if self.dry_run:
                self._record(Result(n, outcome), now_ms)

    # delivery results -------------------------------------------------------------------------------------
    def _record(self, result: Result, now_ms: int) -> None:
        n = result.notification
        with self._db:
            if result.outcome in ("sent", "skipped"):
                with transaction(self._conn):
                    self.outbox.finish(n, result.outcome, now_ms)
                    self.nflog.record(LogEntry(n.key, n.firing, n.resolved, now_ms))
                (self.stats.sent if result.outcome == "sent" else self.stats.skipped)[n.receiver] += 1
            elif result.outcome == "failed":
                self.outbox.finish(n, "failed", now_ms, result.error)
                self.stats.failed[n.receiver] += 1
                log.error("notification %s to %s failed for good: %s", n.id[:8], n.integration_key, result.error)
            elif result.next_attempt_ms != n.next_attempt_ms or result.outcome == "retry":
                self.outbox.reschedule(n, result.next_attempt_ms, result.error)

    def _maybe_gc(self, now_ms: int) -> None:
        if now_ms - self._last_gc < _GC_EVERY_MS:
            return
        self._last_gc = now_ms
        with self._db:
            self.nflog.gc(now_ms, RETENTION_MS)
            self.outbox.gc(now_ms, RETENTION_MS)
            self.silences.gc(now_ms, RETENTION_MS)
