"""The alert lifecycle over synthetic detection frames: for, keep_firing_for, labels, explanations."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from tunewatch.alert.engine import AlertEngine
from tunewatch.alert.model import Alert, fingerprint
from tunewatch.alert.rules import parse_rules
from tunewatch.detect.stage import DETECTION_SCHEMA
from tunewatch.errors import ConfigError

T0 = 1_767_571_200_000
RULES = """
groups:
  - name: g
    rules:
      - alert: FailuresUp
        metric: failure_rate
        dimensions: [market]
        min_score: 0.7
        min_ratio: 2
        for: 2m
        keep_firing_for: 2m
        labels: {severity: critical}
        annotations:
          summary: "failures {{ $value }} vs {{ $expected }} in {{ $labels.market }}"
          runbook_url: https://example.com/rb
"""


def _detections(values: list[float], market: str = "BR", score_when_high: float = 0.95) -> pl.DataFrame:
    rows: list[dict[str, Any]] = []
    for i, v in enumerate(values):
        high = v > 0.1
        rows.append(
            {
                "window_start": T0 + i * 60_000,
                "metric": "failure_rate",
                "sid": 0,
                "dimset": "market",
                "market": market,
                "value": v,
                "weight": 500.0,
                "expected": 0.01,
                "lower": 0.0,
                "upper": 0.03,
                "score": score_when_high if high else 0.01,
            }
        )
    return pl.DataFrame(rows, schema=DETECTION_SCHEMA)


def _metrics() -> pl.DataFrame:
    return pl.DataFrame({"window_start": [T0], "dimset": ["market"], "market": ["BR"], "est_revenue_micros": [1e6]})


def test_fires_after_for_and_resolves_after_keep_firing_for() -> None:
    engine = AlertEngine(parse_rules(RULES))
    values = [0.01] * 3 + [0.5] * 4 + [0.01] * 4
    changes = engine.evaluate(_detections(values), _metrics())
    assert [a.status for a in changes] == ["firing", "resolved"]
    firing, resolved = changes
    assert firing.starts_at == T0 + 3 * 60_000  # onset: first anomalous window
    assert firing.extra["fired_at"] == T0 + 5 * 60_000  # end of the 2nd anomalous window
    assert resolved.ends_at == T0 + 7 * 60_000  # end of the last anomalous window
    assert firing.fingerprint == resolved.fingerprint
    assert firing.labels == {
        "alertname": "FailuresUp",
        "severity": "critical",
        "metric": "failure_rate",
        "market": "BR",
    }
    assert firing.annotations["summary"] == "failures 50.00% vs 1.00% in BR"
    assert firing.annotations["runbook_url"] == "https://example.com/rb"
    assert "expected" in firing.annotations and "actual" in firing.annotations


def test_single_spike_is_only_pending() -> None:
    engine = AlertEngine(parse_rules(RULES))
    assert engine.evaluate(_detections([0.01, 0.5, 0.01, 0.01]), _metrics()) == []


def test_low_score_or_small_change_does_not_fire() -> None:
    engine = AlertEngine(parse_rules(RULES))
    assert engine.evaluate(_detections([0.5] * 5, score_when_high=0.2), _metrics()) == []


def test_state_carries_across_batches() -> None:
    engine = AlertEngine(parse_rules(RULES))
    det = _detections([0.01, 0.5, 0.5, 0.5])
    first = engine.evaluate(det.head(2), _metrics())
    second = engine.evaluate(det.tail(2), _metrics())
    assert first == [] and [a.status for a in second] == ["firing"]
    assert len(engine.active()) == 1


def test_fingerprint_matches_alertmanager() -> None:
    # Alertmanager: model.LabelSet{"alertname": "Test"}.Fingerprint() == 0x... (FNV-1a over sorted pairs)
    assert fingerprint({}) == "cbf29ce484222325"
    assert fingerprint({"a": "1", "b": "2"}) == fingerprint({"b": "2", "a": "1"})
    assert fingerprint({"a": "1"}) != fingerprint({"a": "2"})


def test_alert_round_trips_through_json_form() -> None:
    engine = AlertEngine(parse_rules(RULES))
    firing = engine.evaluate(_detections([0.5] * 3), _metrics())[0]
    again = Alert.from_dict(firing.to_dict())
    assert again.labels == firing.labels and again.starts_at == firing.starts_at
    assert firing.to_dict()["endsAt"] == "0001-01-01T00:00:00Z"


def test_templates_never_evaluate_code() -> None:
    # an unknown function (Python's builtins are not template functions) or a misspelt variable fails the load,
    # naming the file's line
    for bad, reason in (("{{ __import__('os') }}", 'function "__import__" not defined'),
                        ("{{ $valeu }}", "undefined variable '$valeu'")):  # fmt: skip
        with pytest.raises(ConfigError) as err:
            parse_rules(RULES.replace("failures {{ $value }}", bad), "rules.yaml")
        assert str(err.value).startswith("rules.yaml:14:") and reason in str(err.value)
    # Python attribute walks reach nothing: a missing label is empty, as in Prometheus
    rules = RULES.replace("failures {{ $value }}", "{{ $labels.__class__ }}{{ $labels.nope }}|")
    firing = AlertEngine(parse_rules(rules)).evaluate(_detections([0.5] * 3), _metrics())[0]
    assert firing.annotations["summary"].startswith("| vs")


def test_annotation_functions_use_the_number_behind_the_shown_value() -> None:
    rules = RULES.replace("failures {{ $value }}", "failures {{ $value | humanizePercentage }} ({{ $value }})")
    rules = rules.replace("in {{ $labels.market }}", "in {{ $labels.market | toLower }} {{ humanize 1234567 }}")
    firing = AlertEngine(parse_rules(rules)).evaluate(_detections([0.5] * 3), _metrics())[0]
    assert firing.annotations["summary"] == "failures 50% (50.00%) vs 1.00% in br 1.235M"


def test_min_weight_reads_the_weight_the_judgement_rests_on() -> None:
    """A failure rate of 5 attempts a minute judged over five pooled minutes (25 attempts) passes a
    ``min_weight: 10`` guard; judged on its own minute it does not; without the column, the point's weight."""
    rules = parse_rules(RULES.replace("for: 2m", "for: 2m\n        min_weight: 10"))
    values = [0.01] * 3 + [0.5] * 4 + [0.01] * 4
    small = _detections(values).with_columns(pl.lit(5.0).alias("weight"))
    pooled = small.with_columns(pl.lit(25.0).alias("evidence_weight"))
    assert [a.status for a in AlertEngine(rules).evaluate(pooled, _metrics())] == ["firing", "resolved"]
    assert AlertEngine(rules).evaluate(small.with_columns(pl.lit(5.0).alias("evidence_weight")), _metrics()) == []
    assert AlertEngine(rules).evaluate(small.drop("evidence_weight"), _metrics()) == []
    assert [a.status for a in AlertEngine(rules).evaluate(_detections(values).drop("evidence_weight"), _metrics())] == [
        "firing",
        "resolved",
    ]
