"""Scenario scoring: a drawn scenario simulated, run through the pipeline and scored; totals per volume band."""

from __future__ import annotations

import pytest

from tunewatch.alert.model import Alert
from tunewatch.evaluate.backtest import Incident, incidents_from_labels, score
from tunewatch.evaluate.scenarios import BandScore, ScenarioRun, run_scenario
from tunewatch.simulate.scenarios import PlannedIncident, Scenario, draw_scenario

T0 = 1_767_571_200_000
MIN = 60_000


def _run(alerts: list[Alert], inc: Incident, minutes: int) -> ScenarioRun:
    sc = Scenario(1, 100.0, 3, minutes, PlannedIncident(inc.kind, "market", 0.5, 90, 20))
    report = score(alerts, [inc], span_ms=minutes * MIN)
    return ScenarioRun(sc, alerts, [inc], report, events=minutes * 100, end_ms=T0 + minutes * MIN, seconds=2.0)


def test_band_totals_count_detections_misses_and_quiet_days() -> None:
    inc = Incident("failures", {"market": "BR"}, T0 + 90 * MIN, T0 + 110 * MIN)
    caught = Alert({"alertname": "FailuresUp", "market": "BR"}, {}, "firing", T0 + 92 * MIN,
                   extra={"fired_at": T0 + 93 * MIN})  # fmt: skip
    stray = Alert({"alertname": "FailuresUp", "market": "DE"}, {}, "firing", T0 + 20 * MIN)
    band = BandScore()
    band.add(_run([caught, stray], inc, 150))
    band.add(_run([], Incident("skips", {}, T0 + 140 * MIN, T0 + 200 * MIN), 150))  # runs past the stream's end
    assert (band.scenarios, band.detected, band.false, band.collateral) == (2, 1, 1, 0)
    assert band.recall == 0.5 and band.missed == ["skips@global"]
    assert band.median_time_to_detect_s == 180.0
    # quiet: 150 - (110 + 15 grace - 90) = 115 minutes, then 150 - (150 - 140) = 140 minutes (clipped at the end)
    assert band.days == pytest.approx((115 + 140) / 1440)
    assert band.false_per_day == pytest.approx(1 / band.days)
    assert (band.events, band.seconds) == (30_000, 4.0)


def test_labels_entries_become_incidents_and_bad_ones_name_the_field() -> None:
    (inc,) = incidents_from_labels(
        [{"kind": "cdn_outage", "dims": {"market": "BR"}, "start": "2026-01-05T00:00:00Z", "end": T0 + MIN}]
    )
    assert inc == Incident("cdn_outage", {"market": "BR"}, T0, T0 + MIN)
    with pytest.raises(ValueError, match="colour"):
        incidents_from_labels([{"kind": "x", "dims": {"colour": "red"}, "start": 0, "end": 1}])


@pytest.mark.slow
def test_a_drawn_scenario_is_simulated_run_and_scored() -> None:
    sc = draw_scenario(1198)  # ~100 events/min for 133 minutes: the cheapest of the dev seeds' first 400
    run = run_scenario(sc)
    (inc,) = run.incidents
    assert inc.kind == sc.incident.kind and (inc.end - inc.start) == sc.incident.duration_minutes * MIN
    assert run.events == pytest.approx(sc.events_per_minute * sc.minutes, rel=0.2)
    assert run.report.incidents[0].incident == inc
    assert run.report.firing == sum(a.status == "firing" for a in run.alerts) > 0
    assert run.report.incidents[0].detected_by is not None  # the default pack catches this low-quality incident
