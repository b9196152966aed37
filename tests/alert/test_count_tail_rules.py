"""Rules with ``count_tail``: a small slice's drop found from exact tails of its last minutes, through the real
alert engine; the option's validation; the engine's checkpoint of the tails; folding of a larger incident."""

from __future__ import annotations

import polars as pl
import pytest

from tests.alert.pooled import METRICS, MINUTE, T0, plays_drop_rules
from tunewatch.alert.engine import AlertEngine
from tunewatch.alert.incidents import IncidentFolder
from tunewatch.alert.model import Alert
from tunewatch.alert.rules import parse_rules
from tunewatch.detect.stage import DETECTION_SCHEMA
from tunewatch.errors import ConfigError


def _rules(count_tail: bool) -> str:
    return plays_drop_rules("2m", count_tail=count_tail)


def _silence(before: int = 90, silent: int = 15, rate: float = 3.0) -> pl.DataFrame:
    """platform=tv sends 3 plays a minute (the detector expects 3 and scores every minute 0.1), then none."""
    values = [rate if i % 3 else rate + 1 if i % 2 else rate - 1 for i in range(before)] + [0.0] * silent
    base = {"metric": "plays", "sid": 0, "dimset": "platform", "platform": "tv", "weight": 1.0, "expected": rate,
            "lower": 0.0, "upper": 10.0, "score": 0.1}  # fmt: skip
    rows = [{"window_start": T0 + i * MINUTE, **base, "value": v} for i, v in enumerate(values)]
    return pl.DataFrame(rows, schema=DETECTION_SCHEMA)


def test_a_small_platform_going_silent_fires_from_the_count_tail_alone() -> None:
    """The detector's own score never reaches the rule's; the exact tail of the silent minutes does, within 5
    minutes of silence at 3 plays a minute; the alert says how many minutes its judgement spans."""
    frame = _silence()
    fired = [a for a in AlertEngine(parse_rules(_rules(True))).evaluate(frame, METRICS) if a.status == "firing"]
    (alert,) = fired
    after = (alert.extra["fired_at"] - (T0 + 90 * MINUTE)) / MINUTE
    assert after <= 5
    assert alert.labels["platform"] == "tv" and alert.starts_at >= T0 + 90 * MINUTE
    assert alert.extra["score"] >= 0.5
    assert [a for a in AlertEngine(parse_rules(_rules(False))).evaluate(frame, METRICS)] == []


def test_the_tails_are_kept_in_the_engine_s_checkpoint() -> None:
    """An engine resumed from a checkpoint taken before the silence fires when one that ran through does."""
    frame = _silence()
    whole = AlertEngine(parse_rules(_rules(True)), fold=False).evaluate(frame, METRICS)
    first = AlertEngine(parse_rules(_rules(True)), fold=False)
    cut = T0 + 85 * MINUTE
    assert first.evaluate(frame.filter(pl.col("window_start") < cut), METRICS) == []
    state = first.state_dict()
    assert state["rules"][0]["count_tail"] is not None
    resumed = AlertEngine(parse_rules(_rules(True)), fold=False)
    resumed.load_state_dict(state)
    rest = resumed.evaluate(frame.filter(pl.col("window_start") >= cut), METRICS)
    assert [(a.status, a.starts_at) for a in rest] == [(a.status, a.starts_at) for a in whole]
    fresh = AlertEngine(parse_rules(_rules(True)), fold=False)  # without the history: no judgement yet
    assert fresh.evaluate(frame.filter(pl.col("window_start") >= cut), METRICS) == []


@pytest.mark.parametrize(("metric", "direction"), [("skip_rate", "up"), ("plays", "up")])
def test_count_tail_needs_a_count_metric_judged_downwards(metric: str, direction: str) -> None:
    text = f"""
groups: [{{name: g, rules: [{{alert: A, kind: anomaly, metric: {metric}, direction: {direction},
                             count_tail: true}}]}}]
"""
    with pytest.raises(ConfigError, match="count_tail"):
        parse_rules(text)


def _alert(dims: dict[str, str], fired: int) -> Alert:
    labels = {"alertname": "AdImpressionsDrop", "severity": "critical", "metric": "ads", **dims}
    extra = {"rule_kind": "anomaly", "fired_at": fired, "value": 1.0, "expected": 2.0}
    return Alert(labels=labels, annotations={}, status="firing", starts_at=fired - 3 * MINUTE, extra=extra)


def test_a_coarser_alert_the_incident_explains_little_of_is_a_larger_incident() -> None:
    """Ads fall in every market; the largest market's free tier alerts first. The whole service's alert, of
    which that slice carries a fifth, is notified as the incident it is (not folded under one market), and a
    second market's alert then folds into it."""

    def row(dimset: str, dims: dict[str, str], value: float, expected: float) -> dict[str, object]:
        return {"window_start": T0, "metric": "ads", "sid": 0, "dimset": dimset, **dims, "value": value,
                "expected": expected, "weight": 1.0, "score": 0.9}  # fmt: skip

    frame = pl.DataFrame([
        row("global", {}, 20.0, 100.0),
        row("market,tier", {"market": "US", "tier": "free"}, 4.0, 20.0),
        row("market,tier", {"market": "BR", "tier": "free"}, 2.0, 10.0),
    ], schema=DETECTION_SCHEMA)  # fmt: skip
    folder = IncidentFolder()
    first = _alert({"market": "US", "tier": "free"}, T0 + MINUTE)
    assert folder.fold([first], frame) == [first]
    whole = _alert({}, T0 + MINUTE)
    assert folder.fold([whole], frame) == [whole]
    assert folder.fold([_alert({"market": "BR", "tier": "free"}, T0 + MINUTE)], frame) == []
    assert len(folder.active()) == 2
