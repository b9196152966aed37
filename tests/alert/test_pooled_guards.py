"""Anomaly rules' size guards read the evidence the detector pooled (low volume), and min_excess."""

from __future__ import annotations

import polars as pl

from tests.alert.pooled import METRICS, T0, plays_drop_rules, plays_frame
from tunewatch.alert.engine import AlertEngine
from tunewatch.alert.rules import parse_rules
from tunewatch.process.heavy_hitters import HeavyHitters

RULES = plays_drop_rules("2m")


def _frame(rows: list[tuple[float, float, float, float, float]]) -> pl.DataFrame:
    """(value, expected, evidence value, evidence expected, evidence excess) per minute, score 0.9."""
    return plays_frame([
        {"value": v, "expected": e, "upper": 2 * e,
         "evidence_value": ev, "evidence_expected": ee, "evidence_excess": ex}
        for v, e, ev, ee, ex in rows
    ])  # fmt: skip


def test_a_small_slice_fires_on_its_pooled_minutes_although_single_minutes_flicker() -> None:
    """About 5 plays a minute falling to 1: the point value flickers (3 is not half of 5), the pooled mean does
    not, and the pooled excess passes min_excess."""
    rows = [(3.0, 5.0, 1.4, 5.0, -18.0), (0.0, 5.0, 1.2, 5.0, -19.0), (3.0, 5.0, 1.0, 5.0, -20.0)]
    changes = AlertEngine(parse_rules(RULES)).evaluate(_frame(rows), METRICS)
    assert [a.status for a in changes] == ["firing"]


def test_an_alert_fired_on_pooled_minutes_shows_them_not_its_newest_minute() -> None:
    """The newest minute (3 plays against 5) would read as no drop at all; the alert shows the pooled mean it
    fired on (1.4 a minute against 5 over the last 5 minutes, at the minute it fired), and says so."""
    rows = [(3.0, 5.0, 1.4, 5.0, -18.0), (0.0, 5.0, 1.2, 5.0, -19.0), (3.0, 5.0, 1.0, 5.0, -20.0)]
    frame = _frame(rows).with_columns(pl.lit(5.0).alias("evidence_points"))
    (alert,) = AlertEngine(parse_rules(RULES)).evaluate(frame, METRICS)
    assert (alert.extra["value"], alert.extra["expected"], alert.extra["evidence_minutes"]) == (1.4, 5.0, 5)
    assert "5 minutes" in alert.annotations["evidence"]
    assert alert.annotations["actual"] != "3"  # not the newest minute's value
    # a drop the newest minute shows by itself keeps showing that minute
    steep = [(0.0, 5.0, 1.4, 5.0, -18.0), (0.0, 5.0, 1.2, 5.0, -19.0), (0.0, 5.0, 1.0, 5.0, -20.0)]
    frame = _frame(steep).with_columns(pl.lit(5.0).alias("evidence_points"))
    (alert,) = AlertEngine(parse_rules(RULES)).evaluate(frame, METRICS)
    assert (alert.extra["value"], "evidence" in alert.annotations) == (0.0, False)


def test_min_excess_holds_back_a_drop_of_too_few_events() -> None:
    rows = [(0.0, 1.0, 0.2, 1.0, -4.0), (0.0, 1.0, 0.0, 1.0, -5.0), (0.0, 1.0, 0.0, 1.0, -6.0)]
    assert AlertEngine(parse_rules(RULES)).evaluate(_frame(rows), METRICS) == []
    bigger = parse_rules(RULES.replace("min_excess: 10", "min_excess: 5"))
    assert [a.status for a in AlertEngine(bigger).evaluate(_frame(rows), METRICS)] == ["firing"]


def test_an_entity_joining_the_heavy_hitters_keeps_its_rate_from_before() -> None:
    """A track played 0.1 times a minute for two hours, then 100 times in a minute, joins the top 2; its rate
    before joining is about 0.1 a minute, not the surge's. Entities that were members from the start, before the
    counts held half a half-life of history, have no prior (they warm up)."""
    hh = HeavyHitters(k=2, half_life_ms=3_600_000)
    for minute in range(120):
        plays = ["a"] * 20 + ["b"] + (["c"] if minute % 10 == 0 else [])
        hh.update(pl.Series("track_id", plays), T0 + minute * 60_000)
    hh.update(pl.Series("track_id", ["a"] * 20 + ["c"] * 100), T0 + 120 * 60_000)
    assert "c" in hh.members
    rates = hh.entry_rates(["c", "a", "zzz"])
    assert 0.05 < rates[0] < 0.3
    assert rates[1] != rates[1] and rates[2] != rates[2]  # NaN: no prior known
    restored = HeavyHitters(k=2, half_life_ms=3_600_000)
    restored.load_state_dict(hh.state_dict())
    assert restored.entry_rates(["c"])[0] == rates[0]
