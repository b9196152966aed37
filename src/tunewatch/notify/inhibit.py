"""Inhibition: mute target alerts while a matching source alert fires (e.g. a global outage mutes per-market alerts).

A target alert is muted by a rule when some *other* firing alert matches the rule's source matchers and has
the same values for every label in ``equal`` (a label missing on both sides counts as equal, as in
Alertmanager).

>>> from tunewatch.alert.model import Alert
>>> from tunewatch.notify.config import InhibitRuleConfig
>>> rule = InhibitRuleConfig(source_matchers=['severity="critical"'], target_matchers=['severity="warning"'],
...                          equal=["market"])
>>> src = Alert({"alertname": "Outage", "severity": "critical", "market": "BR"}, {}, "firing", 0)
>>> index = Inhibitor([rule]).index([src])
>>> index.muted({"alertname": "Slow", "severity": "warning", "market": "BR"}, "f1")
True
>>> index.muted({"alertname": "Slow", "severity": "warning", "market": "DE"}, "f2")
False
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from tunewatch.alert.model import Alert
from tunewatch.notify.config import InhibitRuleConfig
from tunewatch.notify.fingerprints import alert_fingerprint
from tunewatch.notify.matchers import Matcher, matches_all


@dataclass(frozen=True, slots=True)
class _Rule:
    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...]


class InhibitionIndex:
    """For one instant: which firing source alerts exist per rule, keyed by their ``equal`` label values."""

    def __init__(self, rules: Sequence[_Rule], sources: list[dict[tuple[str, ...], set[str]]]) -> None:
        self._rules = rules
        self._sources = sources

    def muted(self, labels: Mapping[str, str], fingerprint: str) -> bool:
        """Whether an alert with ``labels`` (and ``fingerprint``) is inhibited."""
        for rule, sources in zip(self._rules, self._sources, strict=True):
            if not sources or not matches_all(rule.target, labels):
                continue
            fps = sources.get(tuple(labels.get(name, "") for name in rule.equal))
            if fps and (len(fps) > 1 or fingerprint not in fps):
                return True
        return False


    def inhibited_by(self, labels: Mapping[str, str], fingerprint: str) -> list[str]:
        """Fingerprints of the firing source alerts that inhibit an alert with ``labels`` (Alertmanager's
        ``inhibitedBy``); empty when it is not inhibited."""
        found: set[str] = set()
        for rule, sources in zip(self._rules, self._sources, strict=True):
            if sources and matches_all(rule.target, labels):
                fps = sources.get(tuple(labels.get(name, "") for name in rule.equal), set())
                found |= fps - {fingerprint}
        return sorted(found)


class Inhibitor:
    """The configured inhibition rules."""

    def __init__(self, rules: Iterable[InhibitRuleConfig]) -> None:
        self._rules = [_Rule(r.sources(), r.targets(), tuple(r.equal)) for r in rules]

    def index(self, firing: Iterable[Alert]) -> InhibitionIndex:
        """Index the currently firing alerts as potential sources."""
        sources: list[dict[tuple[str, ...], set[str]]] = [{} for _ in self._rules]
        if self._rules:
            for alert in firing:
                if alert.status != "firing":
                    continue
                for rule, by_key in zip(self._rules, sources, strict=True):
                    if matches_all(rule.source, alert.labels):
                        key = tuple(alert.labels.get(name, "") for name in rule.equal)
                        by_key.setdefault(key, set()).add(alert_fingerprint(alert))
        return InhibitionIndex(self._rules, sources)
