"""Score alerts against labelled incidents: recall, precision, collateral and false alerts, time to detect.

Definitions (used by ``tunewatch backtest``, ``bench/incidents.py`` and the tests):

* an incident is **detected** when an alert whose dimension labels equal the incident's ``dims`` exactly
  (same fields, same values; none for a global incident) fires between the incident's start and
  ``start + detect_within`` — *fires* meaning the event time at which it was notified (``notified_at``: the
  end of the window that completed its ``for``, later where the incident folder held its first notification),
  not the back-dated onset; its **time to detect** is ``notified_at - start``; an incident not detected in time
  but whose dimensions an alert named later while it lasted (up to ``end + grace``) is **late**, reported
  with that delay (``late_s``) and not counted in recall;
* a firing alert is **right** when its dimension labels equal the dims of an incident its firing overlaps
  (``[start, end + grace]``); it is **collateral** when it overlaps an incident but names other dimensions
  (a global alert or ``market=BR`` during an outage on ``market=BR, cdn=edge-2``: a consequence, but a
  second page for one incident); every other alert is **false** (outside every incident);
* **precision** is right alerts over all firing alerts, so both collateral and false alerts lower it;
  false alerts of the same alertname that fire within ``group_gap`` of the first one of a group share one
  notification group (as Alertmanager's grouping would send them).

Slices folded into an alert as "also affected" (see :mod:`tunewatch.alert.incidents`) are part of that
alert, not alerts of their own: they are neither collateral nor false.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tunewatch.alert.model import Alert, parse_time
from tunewatch.errors import InputError
from tunewatch.schema import DIMENSION_FIELDS, FIELD_NAMES

MINUTE = 60_000


@dataclass(frozen=True, slots=True)
class Incident:
    """One labelled incident.

    >>> (inc,) = incidents_from_labels([{"kind": "cdn_outage", "dims": {"market": "BR", "cdn": "edge-2"},
    ...                                 "start": "2026-01-05T10:00:00Z", "end": "2026-01-05T10:30:00Z"}])
    >>> inc.kind, inc.dims, (inc.end - inc.start) // MINUTE
    ('cdn_outage', {'market': 'BR', 'cdn': 'edge-2'}, 30)
    """

    kind: str
    dims: dict[str, str]
    start: int
    end: int


@dataclass(slots=True)
class IncidentResult:
    """Whether and how fast one incident was detected.

    >>> inc = Incident("cdn_outage", {"market": "BR"}, start=0, end=30 * MINUTE)
    >>> alert = Alert({"alertname": "FailuresUp", "market": "BR"}, {}, "firing", 0, extra={"fired_at": 2 * MINUTE})
    >>> (result,) = score([alert], [inc], span_ms=60 * MINUTE).incidents
    >>> result.detected_by, result.time_to_detect_s
    ('FailuresUp', 120.0)

    An alert on the right dimension notified after ``detect_within`` (5 minutes) is late, not a detection:

    >>> slow = Alert({"alertname": "FailuresUp", "market": "BR"}, {}, "firing", 0, extra={"fired_at": 9 * MINUTE})
    >>> (result,) = score([slow], [inc], span_ms=60 * MINUTE).incidents
    >>> result.detected_by, result.late_by, result.late_s
    (None, 'FailuresUp', 540.0)
    """

    incident: Incident
    detected_by: str | None = None
    time_to_detect_s: float | None = None
    #: not detected in time, but named by this alert later while it lasted (``None`` otherwise)
    late_by: str | None = None
    late_s: float | None = None


@dataclass(slots=True)
class BacktestReport:
    """Scores of a set of alerts against labelled incidents.

    >>> inc = Incident("cdn_outage", {"market": "BR"}, start=60 * MINUTE, end=90 * MINUTE)
    >>> right = Alert({"alertname": "FailuresUp", "market": "BR"}, {}, "firing", 61 * MINUTE)
    >>> wider = Alert({"alertname": "FailuresUp"}, {}, "firing", 62 * MINUTE)  # global: collateral
    >>> stray = Alert({"alertname": "FailuresUp", "market": "SE"}, {}, "firing", 10 * MINUTE)  # outside: false
    >>> report = score([right, wider, stray], [inc], span_ms=24 * 60 * MINUTE)
    >>> report.recall, round(report.precision, 2), len(report.collateral), report.false_per_day
    (1.0, 0.33, 1, 1.0)
    """

    incidents: list[IncidentResult]
    firing: int
    right: int
    collateral: list[Alert] = field(default_factory=list)
    false_alerts: list[Alert] = field(default_factory=list)
    false_groups: int = 0
    days: float = 0.0
    detect_within_ms: int = 5 * MINUTE
    grace_ms: int = 15 * MINUTE

    @property
    def recall(self) -> float:
        """Share of incidents detected on the right dimension in time."""
        return sum(r.detected_by is not None for r in self.incidents) / len(self.incidents) if self.incidents else 1.0

    @property
    def late(self) -> int:
        """Incidents not detected in time whose dimensions an alert named later while they lasted."""
        return sum(r.late_by is not None for r in self.incidents)

    @property
    def precision(self) -> float:
        """Share of firing alerts on an incident's own dimensions (collateral and false alerts both count against)."""
        return self.right / self.firing if self.firing else 1.0

    @property
    def collateral_per_incident(self) -> float:
        """Collateral alerts per labelled incident."""
        return len(self.collateral) / len(self.incidents) if self.incidents else float(len(self.collateral))

    @property
    def false_per_day(self) -> float:
        """False alerts (outside every incident) per day of data."""
        return len(self.false_alerts) / self.days if self.days > 0 else float(len(self.false_alerts))

    @property
    def median_time_to_detect_s(self) -> float | None:
        """Median time to detect over the detected incidents."""
        return median([r.time_to_detect_s for r in self.incidents if r.time_to_detect_s is not None])


def median(values: Sequence[float]) -> float | None:
    """The median of ``values`` (``None`` when empty)."""
    ordered = sorted(values)
    if not ordered:
        return None
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def incidents_from_labels(items: Sequence[Mapping[str, Any]]) -> list[Incident]:
    """Incidents from labels-file entries (``{"kind", "dims", "start", "end"}``, times RFC 3339 or epoch ms).

    Raises ``ValueError`` (or ``KeyError``/``TypeError``) naming what is wrong with an entry.
    """
    out = []
    for item in items:
        dims = {str(k): str(v) for k, v in (item.get("dims") or {}).items()}
        unknown = [k for k in dims if k not in FIELD_NAMES]
        if unknown:
            raise ValueError(f"unknown dimension field(s) {unknown}")
        out.append(Incident(str(item["kind"]), dims, _ms(item["start"]), _ms(item["end"])))
    return out


def load_labels(path: Path | str) -> list[Incident]:
    """Read a labels file (``{"incidents": [{"kind", "dims", "start", "end"}]}``)."""
    p = Path(path)
    try:
        return incidents_from_labels(json.loads(p.read_text(encoding="utf-8"))["incidents"])
    except FileNotFoundError as exc:
        raise InputError(f"{p}: no such labels file") from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{p}: not a labels file ({exc})") from exc


def _ms(value: Any) -> int:
    if isinstance(value, int | float):
        return int(value)
    parsed = parse_time(str(value))
    if parsed is None:
        raise ValueError(f"invalid time {value!r}")
    return parsed


def alert_dims(alert: Alert) -> dict[str, str]:
    """The alert's dimension labels (schema fields)."""
    return {k: v for k, v in alert.labels.items() if k in DIMENSION_FIELDS}


def fired_at(alert: Alert) -> int:
    """Event time at which the alert fired (end of the window that completed its ``for``)."""
    return int(alert.extra.get("fired_at", alert.starts_at))


def notified_at(alert: Alert) -> int:
    """Event time at which the alert was notified: when it fired, or when a held first notification was sent."""
    return int(alert.extra.get("notified_at", fired_at(alert)))


def _detects(alert: Alert, inc: Incident, detect_within_ms: int) -> bool:
    t = notified_at(alert)
    return alert_dims(alert) == inc.dims and inc.start <= t <= inc.start + detect_within_ms


def _late(alert: Alert, inc: Incident, grace_ms: int) -> bool:
    t = notified_at(alert)
    return alert_dims(alert) == inc.dims and inc.start <= t <= inc.end + grace_ms


def _overlaps(alert: Alert, end: int, inc: Incident, grace_ms: int) -> bool:
    return alert.starts_at <= inc.end + grace_ms and end >= inc.start


Verdict = Literal["right", "collateral", "false"]


def verdict(alert: Alert, end: int, incidents: Sequence[Incident], grace_ms: int) -> Verdict:
    """``right`` (on the dims of an incident it overlaps), ``collateral`` (overlaps one, other dims) or ``false``."""
    during = [inc for inc in incidents if _overlaps(alert, end, inc, grace_ms)]
    if not during:
        return "false"
    dims = alert_dims(alert)
    return "right" if any(dims == inc.dims for inc in during) else "collateral"


def _ends(alerts: Sequence[Alert]) -> dict[str, int | None]:
    return {a.fingerprint + str(a.starts_at): a.ends_at for a in alerts if a.status == "resolved"}


def score(
    alerts: Sequence[Alert],
    incidents: Sequence[Incident],
    *,
    span_ms: int,
    detect_within_ms: int = 5 * MINUTE,
    grace_ms: int = 15 * MINUTE,
    group_gap_ms: int = 10 * MINUTE,
) -> BacktestReport:
    """Score alert state changes (firing ones are used) against incidents over ``span_ms`` of data."""
    firing = [a for a in alerts if a.status == "firing"]
    ends = _ends(alerts)
    results = []
    for inc in incidents:
        res = IncidentResult(inc)
        for a in sorted(firing, key=notified_at):
            if _detects(a, inc, detect_within_ms):
                res.detected_by, res.time_to_detect_s = a.name, (notified_at(a) - inc.start) / 1000
                break
            if res.late_by is None and _late(a, inc, grace_ms):  # in notification order: after any detection
                res.late_by, res.late_s = a.name, (notified_at(a) - inc.start) / 1000
        results.append(res)
    right = 0
    collateral: list[Alert] = []
    false: list[Alert] = []
    for a in firing:
        end = ends.get(a.fingerprint + str(a.starts_at)) or fired_at(a)
        v = verdict(a, end, incidents, grace_ms)
        if v == "right":
            right += 1
        elif v == "collateral":
            collateral.append(a)
        else:
            false.append(a)
    groups = 0
    open_groups: dict[str, int] = {}
    for a in sorted(false, key=fired_at):
        t = fired_at(a)
        first = open_groups.get(a.name)
        if first is None or t - first > group_gap_ms:
            open_groups[a.name] = t
            groups += 1
    return BacktestReport(
        incidents=results,
        firing=len(firing),
        right=right,
        collateral=collateral,
        false_alerts=false,
        false_groups=groups,
        days=span_ms / (24 * 3600 * 1000),
        detect_within_ms=detect_within_ms,
        grace_ms=grace_ms,
    )


@dataclass(slots=True)
class RuleScore:
    """One rule on history: how often and how long it fired and, with labels, how well it did.

    >>> inc = Incident("cdn_outage", {"market": "BR"}, start=0, end=30 * MINUTE)
    >>> alerts = [Alert({"alertname": "FailuresUp", "market": "BR"}, {}, "firing", MINUTE),
    ...           Alert({"alertname": "FailuresUp", "market": "BR"}, {}, "resolved", MINUTE, ends_at=11 * MINUTE)]
    >>> (rs,) = per_rule(alerts, ["FailuresUp"], [inc])
    >>> rs.alerts, rs.firing_ms // MINUTE, rs.precision, rs.recall, rs.median_time_to_detect_s
    (1, 10, 1.0, 1.0, 60.0)
    """

    rule: str
    alerts: int = 0
    firing_ms: int = 0
    right: int = 0
    collateral: int = 0
    false: int = 0
    detected: int = 0
    incidents: int = 0
    time_to_detect_s: list[float] = field(default_factory=list)

    @property
    def precision(self) -> float | None:
        """Share of this rule's alerts on an incident's own dimensions (``None`` when it never fired)."""
        return self.right / self.alerts if self.alerts else None

    @property
    def recall(self) -> float | None:
        """Share of all labelled incidents this rule detected on the right dimension in time."""
        return self.detected / self.incidents if self.incidents else None

    @property
    def median_time_to_detect_s(self) -> float | None:
        """Median time to detect over the incidents this rule detected."""
        return median(self.time_to_detect_s)


def per_rule(
    alerts: Sequence[Alert],
    rule_names: Sequence[str],
    incidents: Sequence[Incident] | None = None,
    *,
    until_ms: int | None = None,
    detect_within_ms: int = 5 * MINUTE,
    grace_ms: int = 15 * MINUTE,
) -> list[RuleScore]:
    """Per-rule alerts and firing time; with ``incidents``, right/collateral/false alerts, recall, time to detect.

    An alert still firing at the end counts as firing until ``until_ms`` (default: when it fired). Each rule
    is scored on its own: an incident counts as detected by every rule that caught it in time.
    """
    scores = {name: RuleScore(name, incidents=len(incidents) if incidents else 0) for name in rule_names}
    ends = _ends(alerts)
    for a in alerts:
        if a.status != "firing" or a.name not in scores:
            continue
        sc = scores[a.name]
        end = ends.get(a.fingerprint + str(a.starts_at))
        sc.alerts += 1
        stop = end if end is not None else max(until_ms or 0, fired_at(a))
        sc.firing_ms += max(0, stop - a.starts_at)
        if incidents:
            v = verdict(a, end or fired_at(a), incidents, grace_ms)
            setattr(sc, v, getattr(sc, v) + 1)
    for inc in incidents or []:
        for name, sc in scores.items():
            hits = [notified_at(a) for a in alerts if a.status == "firing" and a.name == name
                    and _detects(a, inc, detect_within_ms)]  # fmt: skip
            if hits:
                sc.detected += 1
                sc.time_to_detect_s.append((min(hits) - inc.start) / 1000)
    return list(scores.values())
