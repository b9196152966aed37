"""Absence rules judge a silence by what the series was expected to send when it fell silent."""

from __future__ import annotations

from typing import Any

import polars as pl

from tunewatch.alert.engine import AlertEngine
from tunewatch.alert.rules import parse_rules
from tunewatch.detect.stage import DETECTION_SCHEMA

T0 = 1_767_571_200_000
RULES = """
groups:
  - name: g
    rules:
      - alert: NoData
        kind: absence
        metric: events
        dimensions: [market]
        min_expected: 10
        for: 3m
        keep_firing_for: 2m
"""


def _frame(values: list[float], expected: list[float], first_window: int = 0) -> pl.DataFrame:
    rows: list[dict[str, Any]] = [
        {"window_start": T0 + (first_window + i) * 60_000, "metric": "events", "sid": 0, "dimset": "market",
         "market": "ES", "value": v, "weight": 1.0, "expected": e, "lower": 0.0, "upper": 2 * e, "score": 0.0}
        for i, (v, e) in enumerate(zip(values, expected, strict=True))
    ]  # fmt: skip
    return pl.DataFrame(rows, schema=DETECTION_SCHEMA)


_METRICS = pl.DataFrame({"window_start": [T0], "dimset": ["market"], "market": ["ES"], "est_revenue_micros": [1e6]})


def test_an_outage_fires_although_the_detector_learns_the_zeros() -> None:
    """12 events a minute, then none: the detector's expectation decays below 10 within two minutes, yet the
    silence is judged against the 12 expected when it began."""
    values = [12.0] * 10 + [0.0] * 6
    expected = [12.0] * 10 + [11.0, 9.5, 8.0, 6.5, 5.0, 4.0]
    changes = AlertEngine(parse_rules(RULES)).evaluate(_frame(values, expected), _METRICS)
    assert [a.status for a in changes] == ["firing"]
    assert changes[0].starts_at == T0 + 10 * 60_000


def test_a_series_that_winds_down_before_falling_silent_does_not_fire() -> None:
    values = [12.0, 9.0, 6.0, 4.0, 2.0, 1.0] + [0.0] * 6
    expected = [12.0, 11.0, 9.0, 7.0, 5.0, 3.0, 2.5, 2.0, 1.5, 1.0, 0.8, 0.6]
    assert AlertEngine(parse_rules(RULES)).evaluate(_frame(values, expected), _METRICS) == []


def test_the_reference_is_carried_from_one_batch_to_the_next() -> None:
    """The silence begins at the end of one batch and continues in the next, where the series' last
    non-silent window is no longer among the rows."""
    engine = AlertEngine(parse_rules(RULES))
    first = engine.evaluate(_frame([15.0] * 8 + [0.0], [15.0] * 8 + [14.0]), _METRICS)
    assert first == []
    second = engine.evaluate(_frame([0.0] * 4, [12.0, 9.0, 7.0, 5.0], first_window=9), _METRICS)
    assert [a.status for a in second] == ["firing"]
    assert second[0].starts_at == T0 + 8 * 60_000
    back = engine.evaluate(_frame([14.0] * 4, [5.0] * 4, first_window=13), _METRICS)
    assert [a.status for a in back] == ["resolved"]
