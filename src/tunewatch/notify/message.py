"""What a notification says, independent of the target format: one view per alert with its explanation.

Receivers turn a :class:`MessageView` into Slack blocks, an email or a payload, escaping every label and
annotation value for their format (alert text may contain hostile strings). Runbook links are kept only
when they are plain ``http``/``https`` URLs.

>>> view = AlertView.from_dict({"status": "firing", "labels": {"alertname": "HighFailureRate", "market": "BR"},
...     "annotations": {"summary": "failures up", "runbook_url": "javascript:alert(1)"}, "startsAt": "x"})
>>> view.name, view.dims, view.runbook_url
('HighFailureRate', 'market=BR', None)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from tunewatch.schema import DIMENSION_FIELDS

#: annotation keys shown as explanation lines, with their titles, in display order
EXPLANATION_FIELDS: tuple[tuple[str, str], ...] = (
    ("expected", "Expected"),
    ("actual", "Actual"),
    ("top_contributors", "Top contributors"),
    ("revenue_at_risk_per_hour", "Revenue at risk per hour"),
    ("revenue_per_hour", "Revenue per hour"),
    ("revenue_affected_per_hour", "Revenue of affected streams per hour"),
    ("excess_payouts_per_hour", "Payouts on excess streams per hour"),
    ("simulated_clock", "Simulated clock"),
)
_HIDDEN_LABELS = frozenset({"alertname"})


def safe_url(url: str | None) -> str | None:
    """``url`` if it is an absolute http(s) URL without whitespace or control characters, else ``None``."""
    if not url or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return url if parts.scheme in ("http", "https") and parts.netloc else None


def generator_url(labels: Mapping[str, str], external_url: str) -> str:
    """The console view of an alert's series: ``<external>/?metric=<metric>&<dimension>=<value>...``.

    >>> generator_url({"alertname": "X", "metric": "failure_rate", "market": "BR"}, "https://tw.example.com/")
    'https://tw.example.com/?metric=failure_rate&market=BR'
    """
    query = {"metric": labels["metric"]} if labels.get("metric") else {}
    query |= {k: labels[k] for k in DIMENSION_FIELDS if labels.get(k)}
    return external_url.rstrip("/") + "/" + (f"?{urlencode(query)}" if query else "")


def with_generator_url(alert: dict[str, Any], external_url: str) -> dict[str, Any]:
    """``alert`` (an ``Alert.to_dict()``) with ``generatorURL`` filled when it is empty."""
    if alert.get("generatorURL"):
        return alert
    return {**alert, "generatorURL": generator_url(alert.get("labels", {}), external_url)}


@dataclass(frozen=True, slots=True)
class AlertView:
    """One alert as shown in a message (raw text: escape it for the target format)."""

    status: str
    name: str
    severity: str
    dims: str  #: the other labels, ``k=v, k=v``
    summary: str
    description: str
    explanation: tuple[tuple[str, str], ...]  #: (title, value) pairs present in the annotations
    runbook_url: str | None
    starts_at: str
    ends_at: str

    @classmethod
    def from_dict(cls, alert: Mapping[str, Any]) -> AlertView:
        """Build from an ``Alert.to_dict()`` object."""
        labels: Mapping[str, str] = alert.get("labels", {})
        ann: Mapping[str, str] = alert.get("annotations", {})
        dims = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k not in _HIDDEN_LABELS | {"severity"})
        return cls(
            status=str(alert.get("status", "firing")),
            name=str(labels.get("alertname", "")),
            severity=str(labels.get("severity", "")),
            dims=dims,
            summary=str(ann.get("summary", "")),
            description=str(ann.get("description", "")),
            explanation=tuple((title, str(ann[key])) for key, title in EXPLANATION_FIELDS if ann.get(key)),
            runbook_url=safe_url(ann.get("runbook_url")),
            starts_at=str(alert.get("startsAt", "")),
            ends_at=str(alert.get("endsAt", "")),
        )


@dataclass(frozen=True, slots=True)
class MessageView:
    """A whole notification: title, status counts, common labels and alert views."""

    receiver: str
    status: str  #: ``firing`` if any alert fires, else ``resolved``
    title: str
    group_labels: dict[str, str]
    common_labels: dict[str, str]
    common_annotations: dict[str, str]
    alerts: tuple[AlertView, ...]
    firing_count: int
    resolved_count: int

    @classmethod
    def build(cls, receiver: str, group_labels: Mapping[str, str], alerts: list[dict[str, Any]]) -> MessageView:
        """Build from the alert dicts of a notification."""
        views = tuple(AlertView.from_dict(a) for a in alerts)
        firing = sum(v.status == "firing" for v in views)
        status = "firing" if firing else "resolved"
        common_labels = _common([a.get("labels", {}) for a in alerts])
        common_ann = _common([a.get("annotations", {}) for a in alerts])
        names = sorted({v.name for v in views if v.name})
        subject = names[0] if len(names) == 1 else f"{len(names)} alert rules" if names else "alerts"
        extra = ", ".join(f"{k}={v}" for k, v in sorted(group_labels.items()) if k != "alertname")
        count = firing if firing else len(views)
        title = f"[{status.upper()}:{count}] {subject}" + (f" ({extra})" if extra else "")
        return cls(receiver, status, title, dict(group_labels), common_labels, common_ann, views, firing,
                   len(views) - firing)  # fmt: skip


def _common(maps: list[Mapping[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    first = maps[0]
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in maps[1:])}
