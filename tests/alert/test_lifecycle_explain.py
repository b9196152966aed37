"""Hysteresis against flapping, the alert history in SQLite, and the explanation of a global alert."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from tunewatch.alert.engine import AlertEngine
from tunewatch.alert.log import AlertLog, Transition
from tunewatch.alert.rules import parse_rules
from tunewatch.detect.stage import DETECTION_SCHEMA
from tunewatch.store.sqlite import connect

T0 = 1_767_571_200_000
MIN = 60_000

FLAP = """
groups:
  - name: g
    rules:
      - alert: FailuresUp
        metric: failure_rate
        dimensions: [market]
        min_score: 0.7
        for: 2m
        keep_firing_for: KEEP
"""


def _market(values: list[float]) -> pl.DataFrame:
    rows = [
        {"window_start": T0 + i * MIN, "metric": "failure_rate", "sid": 0, "dimset": "market", "market": "BR",
         "value": v, "weight": 500.0, "expected": 0.01, "lower": 0.0, "upper": 0.03,
         "score": 0.95 if v > 0.1 else 0.01}
        for i, v in enumerate(values)
    ]  # fmt: skip
    return pl.DataFrame(rows, schema=DETECTION_SCHEMA)


_NO_METRICS = pl.DataFrame({"window_start": [T0], "dimset": ["market"], "market": ["BR"], "est_revenue_micros": [0.0]})
# high, with one- and two-minute dips: a flapping series
FLAPPING = [0.01] * 2 + [0.5, 0.5, 0.01, 0.5, 0.01, 0.01, 0.5, 0.5, 0.01, 0.5, 0.01, 0.01, 0.5] + [0.01] * 6


def test_keep_firing_for_turns_a_flapping_series_into_one_alert() -> None:
    changes = AlertEngine(parse_rules(FLAP.replace("KEEP", "3m"))).evaluate(_market(FLAPPING), _NO_METRICS)
    assert [a.status for a in changes] == ["firing", "resolved"]
    assert changes[1].ends_at == T0 + 15 * MIN  # end of the last high window
    # without hysteresis the same series pages again and again
    flappy = AlertEngine(parse_rules(FLAP.replace("KEEP", "0s"))).evaluate(_market(FLAPPING), _NO_METRICS)
    assert sum(a.status == "firing" for a in flappy) == 2


def test_history_keeps_every_state_change_in_order() -> None:
    conn = connect(":memory:")
    history = AlertLog(conn)
    engine = AlertEngine(parse_rules(FLAP.replace("KEEP", "2m")), on_transition=history.record_transition)
    # one lone spike (pending → inactive), then a real incident (pending → firing → resolved)
    values = [0.01, 0.5, 0.01, 0.01, 0.5, 0.5, 0.5, 0.01, 0.01, 0.01]
    history.record(engine.evaluate(_market(values), _NO_METRICS), now_ms=T0 + 10 * MIN)
    entries = history.entries()
    assert [(e.state, (e.at_ms - T0) // MIN) for e in entries] == [
        ("pending", 2),
        ("inactive", 3),
        ("pending", 5),
        ("firing", 6),
        ("resolved", 9),
    ]
    assert len({e.fingerprint for e in entries}) == 1
    firing = history.entries(fingerprint=entries[0].fingerprint, alertname="FailuresUp")[3]
    assert firing.alert is not None and firing.alert["labels"]["market"] == "BR"
    assert history.entries(since_ms=T0 + 6 * MIN, until_ms=T0 + 7 * MIN)[0].state == "firing"
    assert Transition(0, "pending", entries[0].labels).fingerprint == entries[0].fingerprint


GLOBAL = """
groups:
  - name: playback
    rules:
      - alert: PlaybackFailuresUp
        metric: failure_rate
        dimensions: [global, market, cdn, "market,cdn"]
        min_score: 0.5
        min_delta: 0.03
        min_ratio: 2.0
        labels: {severity: critical}
        annotations:
          summary: "Playback failures at {{ $value }} (expected {{ $expected }}) for {{ $dims }}"
          runbook_url: https://runbooks.example.com/playback-failures
"""


def _outage() -> pl.DataFrame:
    """Edge-2 in Brazil fails 38 % of plays; everything else is at the usual 1 %."""
    series: list[tuple[str, dict[str, str], float, float, float]] = [  # dimset, dims, value, weight, score
        ("global", {}, 225 / 4000, 4000, 0.99),
        ("market", {"market": "BR"}, 195 / 1000, 1000, 0.0),
        ("market", {"market": "US"}, 0.01, 3000, 0.0),
        ("cdn", {"cdn": "edge-2"}, 198 / 1300, 1300, 0.0),
        ("cdn", {"cdn": "edge-1"}, 0.01, 2700, 0.0),
        ("market,cdn", {"market": "BR", "cdn": "edge-2"}, 0.38, 500, 0.0),
        ("market,cdn", {"market": "BR", "cdn": "edge-1"}, 0.01, 500, 0.0),
        ("market,cdn", {"market": "US", "cdn": "edge-2"}, 0.01, 800, 0.0),
        ("market,cdn", {"market": "US", "cdn": "edge-1"}, 0.01, 2200, 0.0),
    ]
    rows: list[dict[str, Any]] = [
        {"window_start": T0, "metric": "failure_rate", "sid": sid, "dimset": dimset, **dims, "value": value,
         "weight": weight, "expected": 0.01, "lower": 0.005, "upper": 0.015, "score": score}
        for sid, (dimset, dims, value, weight, score) in enumerate(series)
    ]  # fmt: skip
    return pl.DataFrame(rows, schema=DETECTION_SCHEMA)


def test_global_alert_explains_itself_down_to_market_and_cdn() -> None:
    metrics = pl.DataFrame({"window_start": [T0], "dimset": ["global"], "est_revenue_micros": [2_000_000.0],
                            "plays": [3775.0], "attempts": [4000.0]})  # fmt: skip
    [alert] = AlertEngine(parse_rules(GLOBAL)).evaluate(_outage(), metrics)
    assert alert.labels == {"alertname": "PlaybackFailuresUp", "severity": "critical", "metric": "failure_rate"}
    notes = alert.annotations
    assert notes["summary"] == "Playback failures at 5.62% (expected 1.00%) for global"
    assert notes["actual"] == "5.62%"
    assert notes["expected"] == "1.00% (band 0.50% to 1.50%)"
    # drill-down: the market x cdn pair comes first, and explains the whole excess
    assert notes["top_contributors"].startswith("market=BR, cdn=edge-2: 38.00% vs 1.00% (100% of the excess)")
    top = alert.extra["top_contributors"]
    assert top[0]["dims"] == {"market": "BR", "cdn": "edge-2"}
    assert {tuple(c["dims"].items()) for c in top[1:]} == {(("market", "BR"),), (("cdn", "edge-2"),)}
    assert all("US" not in str(c["dims"]) for c in top)
    # 4.625 % of 4,000 attempts failing beyond the usual: 185 plays lost at 2.00/min / 3,775 plays each
    assert alert.extra["revenue_at_risk_per_hour"] == pytest.approx(185 * 2.0 / 3775 * 60, rel=1e-6)
    assert notes["revenue_at_risk_per_hour"] == "5.88 USD"
    assert notes["runbook_url"] == "https://runbooks.example.com/playback-failures"


def test_rules_without_runbook_get_the_default_runbook_page() -> None:
    rules = GLOBAL.replace("          runbook_url: https://runbooks.example.com/playback-failures\n", "")
    elsewhere = pl.DataFrame({"window_start": [T0], "dimset": ["market"], "est_revenue_micros": [1e6]})
    [alert] = AlertEngine(parse_rules(rules)).evaluate(_outage(), elsewhere)
    assert alert.annotations["runbook_url"].endswith("docs/runbooks.md#playback-failures-up")
    assert "revenue_at_risk_per_hour" not in alert.annotations  # no revenue data, no made-up number
