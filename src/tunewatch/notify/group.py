"""Aggregation groups: alerts that share a route and the values of its ``group_by`` labels, flushed together.

A new group waits ``group_wait`` before its first flush (so alerts that start together go out together),
unless the alert that created it is already older than that; afterwards it flushes every ``group_interval``.
Resolved alerts leave the group once a flush has carried them.

>>> from tunewatch.alert.model import Alert
>>> from tunewatch.notify.config import RouteConfig
>>> from tunewatch.notify.route import Route
>>> route = Route.build(RouteConfig(receiver="team", group_by=["alertname"], group_wait=30))
>>> a = Alert({"alertname": "HighFailureRate", "market": "BR"}, {}, "firing", starts_at=0)
>>> group = AggregationGroup.create(route, a.labels)
>>> group.insert(a, now_ms=1_000)
>>> group.key, group.next_flush_ms
('{}:{alertname="HighFailureRate"}', 31000)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from tunewatch.alert.model import Alert
from tunewatch.notify.fingerprints import alert_fingerprint
from tunewatch.notify.route import Route


def group_key(route: Route, group_labels: Mapping[str, str]) -> str:
    """Alertmanager's group key: ``<route key>:{label="value", ...}`` with labels sorted."""
    inner = ", ".join(f"{k}={json.dumps(group_labels[k], ensure_ascii=False)}" for k in sorted(group_labels))
    return f"{route.key}:{{{inner}}}"


@dataclass(slots=True)
class AggregationGroup:
    """The alerts of one group and its flush timer."""

    route: Route
    labels: dict[str, str]
    key: str
    alerts: dict[str, Alert] = field(default_factory=dict)  #: fingerprint → latest state
    next_flush_ms: int | None = None  #: None until the first alert arrives
    has_flushed: bool = False

    @classmethod
    def create(cls, route: Route, alert_labels: Mapping[str, str]) -> AggregationGroup:
        """An empty group for the alert's group labels on ``route``."""
        labels = route.group_labels(alert_labels)
        return cls(route=route, labels=labels, key=group_key(route, labels))

    def insert(self, alert: Alert, now_ms: int) -> None:
        """Add or update an alert; start or shorten the first flush timer as Alertmanager does."""
        self.alerts[alert_fingerprint(alert)] = alert
        if self.next_flush_ms is None:
            self.next_flush_ms = now_ms + self.route.opts.group_wait_ms
        if not self.has_flushed and alert.starts_at + self.route.opts.group_wait_ms < now_ms:
            self.next_flush_ms = min(self.next_flush_ms, now_ms)

    def snapshot(self) -> list[Alert]:
        """The group's alerts: firing first, then by start time and labels (a stable order for readers and tests)."""
        return sorted(self.alerts.values(), key=lambda a: (a.status != "firing", a.starts_at, sorted(a.labels.items())))

    def flushed(self, carried: list[Alert], flush_ms: int) -> list[str]:
        """After a flush at ``flush_ms``: drop carried resolved alerts still unchanged, schedule the next flush.

        Returns the fingerprints removed.
        """
        removed = []
        for alert in carried:
            fp = alert_fingerprint(alert)
            if alert.status == "resolved" and self.alerts.get(fp) is alert:
                del self.alerts[fp]
                removed.append(fp)
        self.has_flushed = True
        self.next_flush_ms = flush_ms + self.route.opts.group_interval_ms
        return removed

    @property
    def empty(self) -> bool:
        """No alerts left: the group can be deleted."""
        return not self.alerts
