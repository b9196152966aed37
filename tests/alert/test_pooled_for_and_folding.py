"""A rule's ``for`` counts the minutes the detector's pooled evidence spans; folding joins other metrics of one
incident (the alert's excess read in its own metric)."""

from __future__ import annotations

from typing import Any

import polars as pl

from tests.alert.pooled import METRICS, MINUTE, T0, plays_drop_rules, plays_frame
from tunewatch.alert.engine import AlertEngine
from tunewatch.alert.incidents import IncidentFolder
from tunewatch.alert.model import Alert
from tunewatch.alert.rules import parse_rules
from tunewatch.detect.stage import DETECTION_SCHEMA

RULES = plays_drop_rules("3m")


def _frame(points: list[float | None]) -> pl.DataFrame:
    """A platform's plays falling from 5 to 0 a minute, judged over ``points`` minutes each (None: not said)."""
    return plays_frame([
        {"value": 0.0, "expected": 5.0, "upper": 10.0, "evidence_value": 0.0, "evidence_expected": 5.0,
         "evidence_excess": -5.0 * (p or 1) - 10, "evidence_points": p}
        for p in points
    ])  # fmt: skip


def _fired(points: list[float | None]) -> list[Alert]:
    return [a for a in AlertEngine(parse_rules(RULES)).evaluate(_frame(points), METRICS) if a.status == "firing"]


def test_for_counts_the_minutes_the_pooled_evidence_spans() -> None:
    """Evidence over the last 5 minutes together has held for 5 minutes: ``for: 3m`` is met on its first minute,
    and the alert starts at the first of the 3 minutes it credits. Evidence of the long (15-minute) pool is
    credited once a second minute confirms it."""
    (alert,) = _fired([5.0, 5.0, 5.0])
    assert alert.extra["fired_at"] == T0 + MINUTE
    assert alert.starts_at == T0 - 2 * MINUTE
    assert _fired([15.0]) == []
    (alert,) = _fired([15.0, 15.0])
    assert alert.extra["fired_at"] == T0 + 2 * MINUTE and alert.starts_at == T0 - 2 * MINUTE


def test_for_still_waits_for_evidence_of_single_minutes() -> None:
    """Judged on the point alone (1 minute, or a detector that does not say), ``for: 3m`` waits 3 minutes;
    3-minute evidence after a 1-minute one makes 3 (the pools overlap: they are not added up)."""
    for points in ([1.0, 1.0, 1.0], [None, None, None]):
        (alert,) = _fired(points)
        assert alert.extra["fired_at"] == T0 + 3 * MINUTE and alert.starts_at == T0
    assert _fired([1.0, 1.0]) == []
    assert _fired([1.0, 2.0]) == []
    (alert,) = _fired([1.0, 3.0])
    assert alert.extra["fired_at"] == T0 + 2 * MINUTE


def _alert(name: str, metric: str, dims: dict[str, str], value: float, expected: float) -> Alert:
    labels = {"alertname": name, "severity": "critical", "metric": metric, **dims}
    extra = {"rule_kind": "anomaly", "fired_at": T0 + MINUTE, "value": value, "expected": expected}
    return Alert(labels=labels, annotations={"summary": name}, status="firing", starts_at=T0, extra=extra)


def _rows(metric: str, rows: list[tuple[str, dict[str, str], float, float]]) -> list[dict[str, Any]]:
    return [{"window_start": T0, "metric": metric, "sid": i, "dimset": d, **dims, "value": v, "weight": 100.0,
             "expected": e, "score": 0.9} for i, (d, dims, v, e) in enumerate(rows)]  # fmt: skip


def _detections() -> pl.DataFrame:
    """A global failure incident (4 % → 30 %) in the minute plays fall by 100: 8 in DE (a part of it), 60 in JP
    alone (JP's own outage); FR's plays did not fall."""
    failures = _rows("failure_rate", [("global", {}, 0.30, 0.04)])
    plays = _rows(
        "plays",
        [
            ("global", {}, 160.0, 260.0),
            ("market", {"market": "DE"}, 12.0, 20.0),
            ("market", {"market": "JP"}, 0.0, 60.0),
            ("market", {"market": "FR"}, 20.0, 19.0),
        ],
    )
    return pl.DataFrame(failures + plays, schema=DETECTION_SCHEMA, strict=False)


def test_another_metric_on_a_slice_the_incident_explains_is_folded() -> None:
    folder = IncidentFolder()
    detections = _detections()
    (note,) = folder.fold([_alert("PlaybackFailuresUp", "failure_rate", {}, 0.30, 0.04)], detections)
    assert folder.fold([_alert("PlaysDrop", "plays", {"market": "DE"}, 12.0, 20.0)], detections) == []
    (incident,) = folder.active()
    affected = incident.extra["also_affected"]
    assert [(e["alertname"], e["dims"]) for e in affected] == [("PlaysDrop", {"market": "DE"})]
    assert "PlaysDrop on market=DE" in incident.annotations["also_affected"]
    assert note.labels == incident.labels  # the incident's labels stay the root's


def test_another_metric_carrying_most_of_the_incident_slice_s_excess_is_notified() -> None:
    """JP's plays fall by 60 of the 100 the whole service lost, with 23 % of its volume: JP explains the plays
    drop (the drill-down's test), so it is not the failures' doing (its own outage) and is notified on its own."""
    folder = IncidentFolder()
    detections = _detections()
    folder.fold([_alert("PlaybackFailuresUp", "failure_rate", {}, 0.30, 0.04)], detections)
    jp = _alert("PlaysDrop", "plays", {"market": "JP"}, 0.0, 60.0)
    assert folder.fold([jp], detections) == [jp]
    assert len(folder.active()) == 2


def _resolved(a: Alert, at: int) -> Alert:
    return Alert(labels=a.labels, annotations=a.annotations, status="resolved", starts_at=a.starts_at, ends_at=at,
                 extra={**a.extra, "resolved_at": at})  # fmt: skip


def test_the_end_of_an_incident_is_folded_into_it_for_the_aftermath_window() -> None:
    """A global failure incident that took DE's plays drop: DE's plays returning above a level learnt during it,
    10 minutes after it resolved, raise no notification (nor does their resolution); 31 minutes after, the same
    alert is notified. Failures rising again (a recurrence) are notified at once. (No group wait: the whole
    service's plays, rising 12 times as much as DE's, would hold DE's notice for its own alert.)"""
    failures = _alert("PlaybackFailuresUp", "failure_rate", {}, 0.30, 0.04)
    drop = _alert("PlaysDrop", "plays", {"market": "DE"}, 12.0, 20.0)
    back = [("global", {}, 260.0, 160.0), ("market", {"market": "DE"}, 20.0, 12.0)]
    for minutes_after, notified in ((10, False), (31, True)):
        folder = IncidentFolder(group_wait_ms=0)
        folder.fold([failures, drop], _detections())
        assert folder.fold([_resolved(drop, T0 + 2 * MINUTE)], _detections()) == []
        (end,) = folder.fold([_resolved(failures, T0 + 2 * MINUTE)], _detections())
        assert end.status == "resolved" and folder.active() == []
        t = T0 + (2 + minutes_after) * MINUTE
        surge = _alert("PlaysBack", "plays", {"market": "DE"}, 20.0, 12.0)
        surge.extra["fired_at"] = t + MINUTE
        rows = pl.DataFrame([{**r, "window_start": t} for r in _rows("plays", back)], schema=DETECTION_SCHEMA,
                            strict=False)  # fmt: skip
        assert folder.fold([surge], rows) == ([surge] if notified else [])
        ended = folder.fold([_resolved(surge, t + 3 * MINUTE)], rows)
        assert [a.status for a in ended] == (["resolved"] if notified else [])
        restored = IncidentFolder(group_wait_ms=0)
        restored.load_state_dict(folder.state_dict())
        assert restored.state_dict() == folder.state_dict()
        again = _alert("PlaybackFailuresUp", "failure_rate", {"market": "DE"}, 0.3, 0.04)
        again.extra["fired_at"] = t + MINUTE
        assert folder.fold([again], _detections()) == [again]


def test_a_metric_not_watched_on_the_incident_s_slice_joins_it_only_when_it_started_together() -> None:
    """Completion falling on one market's web players during that market's CDN failure (completion is not watched
    per market and CDN), firing a minute after it: the incident's when it started within 5 minutes of the incident,
    its own notice when it started later. Firing in the same minute, nothing says which is the root: both are
    notified."""
    for delay, notified in ((3, False), (20, True)):
        folder = IncidentFolder()
        failures = _rows("failure_rate", [("market,cdn", {"market": "BR", "cdn": "akamai"}, 0.3, 0.01)])
        completion = _rows("completion_rate", [("platform", {"platform": "web"}, 0.5, 0.8)])
        rows = pl.DataFrame(failures + completion, schema=DETECTION_SCHEMA, strict=False)
        folder.fold([_alert("PlaybackFailuresUp", "failure_rate", {"market": "BR", "cdn": "akamai"}, 0.3, 0.01)], rows)
        web = _alert("CompletionRateDown", "completion_rate", {"market": "BR", "platform": "web"}, 0.5, 0.8)
        web = Alert(labels=web.labels, annotations=web.annotations, status="firing",
                    starts_at=T0 + delay * MINUTE, extra={**web.extra, "fired_at": T0 + 2 * MINUTE})  # fmt: skip
        assert folder.fold([web], rows) == ([web] if notified else [])
        same_minute = Alert(labels={**web.labels, "platform": "ios"}, annotations=web.annotations, status="firing",
                            starts_at=T0 + delay * MINUTE, extra={**web.extra, "fired_at": T0 + MINUTE})  # fmt: skip
        assert folder.fold([same_minute], rows) == [same_minute]


def test_a_metric_on_a_slice_apart_from_the_incident_s_is_notified_even_when_it_started_together() -> None:
    """A completion drop on one source, then a startup regression on one platform three minutes later: the two
    slices share no coordinate, so nothing shows the second is the first's doing; folded, it would hide an incident
    (at worst it is one collateral alert)."""
    folder = IncidentFolder()
    completion = _rows("completion_rate", [("source", {"source": "search"}, 0.4, 0.77)])
    startup = _rows("startup_ms_p95", [("platform", {"platform": "android"}, 1500.0, 500.0)])
    rows = pl.DataFrame(completion + startup, schema=DETECTION_SCHEMA, strict=False)
    search = _alert("CompletionRateDown", "completion_rate", {"source": "search"}, 0.4, 0.77)
    assert folder.fold([search], rows) == [search]
    android = _alert("StartupTimeUp", "startup_ms_p95", {"platform": "android"}, 1500.0, 500.0)
    later = {**android.extra, "fired_at": T0 + 2 * MINUTE}
    android = Alert(labels=android.labels, annotations=android.annotations, status="firing",
                    starts_at=search.starts_at + 3 * MINUTE, extra=later)  # fmt: skip
    assert folder.fold([android], rows) == [android]
