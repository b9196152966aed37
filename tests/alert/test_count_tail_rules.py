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


def _ads_everywhere() -> pl.DataFrame:
    def row(dimset: str, dims: dict[str, str], value: float, expected: float) -> dict[str, object]:
        return {"window_start": T0, "metric": "ads", "sid": 0, "dimset": dimset, **dims, "value": value,
                "expected": expected, "weight": 1.0, "score": 0.9}  # fmt: skip

    return pl.DataFrame([
        row("global", {}, 20.0, 100.0),
        row("market,tier", {"market": "US", "tier": "free"}, 4.0, 20.0),
        row("market,tier", {"market": "BR", "tier": "free"}, 2.0, 10.0),
    ], schema=DETECTION_SCHEMA)  # fmt: skip


def test_a_coarser_alert_the_incident_explains_little_of_is_a_larger_incident() -> None:
    """Ads fall in every market; the largest market's free tier alerts first. Without a group wait, the whole
    service's alert, of which that slice carries a fifth, is notified as the incident it is (not folded under
    one market), and a second market's alert then folds into it."""
    frame = _ads_everywhere()
    folder = IncidentFolder(group_wait_ms=0)
    first = _alert({"market": "US", "tier": "free"}, T0 + MINUTE)
    assert folder.fold([first], frame) == [first]
    whole = _alert({}, T0 + MINUTE)
    assert folder.fold([whole], frame) == [whole]
    assert folder.fold([_alert({"market": "BR", "tier": "free"}, T0 + MINUTE)], frame) == []
    assert len(folder.active()) == 2


def test_a_held_slice_is_re_rooted_to_the_parent_that_alerts_within_the_group_wait() -> None:
    """The same storm with the default group wait: the US free tier carries a fifth of the whole service's
    deviation, so its notification is held; the whole service's alert a minute later becomes the incident's
    root, with the US free tier under "also affected" (its share of the excess), and the held notification is
    never sent: one notification for the incident."""
    frame = _ads_everywhere()
    later = frame.with_columns(pl.col("window_start") + MINUTE)
    folder = IncidentFolder()
    first = _alert({"market": "US", "tier": "free"}, T0 + MINUTE)
    assert folder.fold([first], frame) == []
    assert folder.active() == []
    whole = _alert({}, T0 + 2 * MINUTE)
    (note,) = folder.fold([whole], later)
    assert note.labels == whole.labels
    assert note.extra["also_affected"] == [
        {"alertname": "AdImpressionsDrop", "metric": "ads", "dims": {"market": "US", "tier": "free"},
         "share_explained": 0.2}
    ]  # fmt: skip
    assert folder.fold([_alert({"market": "BR", "tier": "free"}, T0 + 2 * MINUTE)], later) == []
    assert [a.labels for a in folder.active()] == [whole.labels]


def test_a_held_notification_goes_out_when_no_parent_alerts_within_the_wait() -> None:
    """No parent alert comes: the held notification is sent once the wait is over, stamped with when
    (``notified_at``), and its resolution follows as usual; a held incident survives a state round trip."""
    frame = _ads_everywhere()
    folder = IncidentFolder(group_wait_ms=2 * MINUTE)
    first = _alert({"market": "US", "tier": "free"}, T0 + MINUTE)
    assert folder.fold([first], frame) == []
    restored = IncidentFolder(group_wait_ms=2 * MINUTE)
    restored.load_state_dict(folder.state_dict())
    for f in (folder, restored):
        assert f.fold([], frame.with_columns(pl.col("window_start") + MINUTE)) == []  # due at T0 + 3 min
        (sent,) = f.fold([], frame.with_columns(pl.col("window_start") + 2 * MINUTE))
        assert sent.labels == first.labels and sent.status == "firing"
        assert sent.extra["notified_at"] == T0 + 3 * MINUTE
        assert [a.labels for a in f.active()] == [first.labels]


def test_an_incident_resolved_while_held_is_still_notified() -> None:
    """A held incident whose alerts all resolve before the wait is over: its firing notification is sent at
    the resolution, then the resolution (nothing detected is lost)."""
    frame = _ads_everywhere()
    folder = IncidentFolder()
    first = _alert({"market": "US", "tier": "free"}, T0 + MINUTE)
    assert folder.fold([first], frame) == []
    done = Alert(labels=first.labels, annotations={}, status="resolved", starts_at=first.starts_at,
                 ends_at=T0 + 2 * MINUTE, extra={**first.extra, "resolved_at": T0 + 2 * MINUTE})  # fmt: skip
    sent = folder.fold([done], frame.with_columns(pl.col("window_start") + MINUTE))
    assert [(a.status, a.extra.get("notified_at")) for a in sent] == [("firing", T0 + 2 * MINUTE),
                                                                      ("resolved", T0 + 2 * MINUTE)]  # fmt: skip
    assert folder.active() == []
