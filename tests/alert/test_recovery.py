"""The end of an incident is not a new one: series that learnt part of an incident's level while it lasted read the
return of its slice as the opposite deviation (a market's traffic back after a two-hour drop: its artists' and
tracks' streams "surge"). Their alerts are the incident's recovery while they are no larger than the return from
the incident's change can make them; the recovery starts when the incident's slice is seen back, not when the
alert that opened it resolved (its detector may adopt a lasting drop an hour in)."""

from __future__ import annotations

import math
from typing import Any

import polars as pl

from tests.alert.pooled import MINUTE, T0, anomaly_alert, resolved_at
from tunewatch.alert.engine import AlertEngine
from tunewatch.alert.incidents import IncidentFolder
from tunewatch.alert.model import Alert
from tunewatch.alert.rules import parse_rules
from tunewatch.detect.stage import DETECTION_SCHEMA

RULES = """
groups:
  - name: g
    rules:
      - alert: PlaysDrop
        kind: anomaly
        metric: plays
        direction: down
        dimensions: [market]
        min_score: 0.5
        for: 2m
      - alert: StreamsSurge
        kind: anomaly
        metric: streams
        direction: up
        dimensions: [market, artist_id]
        min_score: 0.5
        for: 2m
      - alert: PlaybackFailuresUp
        kind: anomaly
        metric: failure_rate
        direction: up
        dimensions: [platform]
        min_score: 0.5
        for: 2m
"""
METRICS = pl.DataFrame({"window_start": [T0], "dimset": ["market"], "market": ["US"], "est_revenue_micros": [1e6]})
DROP_MIN, ADOPTED_MIN, BACK_MIN = 0, 20, 40  # the drop, its adoption by the detector, the market's return


def _row(t: int, metric: str, dimset: str, dims: dict[str, str], value: float, expected: float, score: float,
         sid: int) -> dict[str, Any]:  # fmt: skip
    return {"window_start": T0 + t * MINUTE, "metric": metric, "sid": sid, "dimset": dimset, **dims, "value": value,
            "weight": 1.0, "evidence_weight": 50.0, "expected": expected, "score": score}  # fmt: skip


def _minute(t: int, normal: float, anomalous: float, extra: list[dict[str, Any]]) -> pl.DataFrame:
    """Minute ``t`` of a market's plays falling from ``normal`` to ``anomalous`` a minute at minute 0 (scored until
    its detector adopts the drop at minute 20, back at minute 40: unscored, as the detector does with a return to
    the level before an adopted change), an artist's streams at 20 a minute, and ``extra`` rows."""
    if t < DROP_MIN or t >= BACK_MIN:
        us = _row(t, "plays", "market", {"market": "US"}, normal, normal, 0.0, 0)
    elif t < ADOPTED_MIN:
        us = _row(t, "plays", "market", {"market": "US"}, anomalous, normal, 0.95, 0)
    else:
        us = _row(t, "plays", "market", {"market": "US"}, anomalous, anomalous, 0.0, 0)
    artist = _row(t, "streams", "artist_id", {"artist_id": "a1"}, 20.0, 20.0, 0.0, 1)
    return pl.DataFrame([us, artist, *extra], schema=DETECTION_SCHEMA)


def _run(normal: float, anomalous: float, late: dict[int, list[dict[str, Any]]], minutes: int) -> list[Alert]:
    """The notifications of a real engine stepped minute by minute through the drop and ``late`` rows."""
    engine = AlertEngine(parse_rules(RULES))
    out: list[Alert] = []
    for t in range(-5, minutes):
        rows = _minute(t, normal, anomalous, late.get(t, []))
        # the artist's rows of ``late`` replace its calm row of that minute
        if any(r.get("artist_id") == "a1" for r in late.get(t, [])):
            rows = rows.filter(~((pl.col("artist_id") == "a1") & (pl.col("score") == 0.0)))
        out.extend(engine.evaluate(rows, METRICS))
    return out


def _surge(start: int, value: float, expected: float) -> dict[int, list[dict[str, Any]]]:
    """The artist's streams at ``value`` against ``expected`` a minute for 5 minutes from ``start``."""
    return {t: [_row(t, "streams", "artist_id", {"artist_id": "a1"}, value, expected, 0.9, 1)]
            for t in range(start, start + 5)}  # fmt: skip


def _firing(alerts: list[Alert]) -> list[tuple[str, dict[str, str]]]:
    return [(a.name, {k: v for k, v in a.labels.items() if k in ("market", "artist_id", "platform")})
            for a in alerts if a.status == "firing"]  # fmt: skip


def test_an_artist_s_return_after_a_market_s_long_drop_is_the_drop_s_recovery() -> None:
    """A market's plays fall by 98 % for 40 minutes; its detector adopts the drop after 20 minutes (the alert
    resolves while the market is still away); the artist's streams, learnt lower during the drop, read as a surge
    5 and 55 minutes after the market came back: both are the drop's recovery, never notified. (Before: the
    incident's 30-minute aftermath ran from the alert's resolution and had ended before the market came back.)"""
    for start in (BACK_MIN + 5, BACK_MIN + 55):
        alerts = _run(1900.0, 40.0, _surge(start, 30.0, 15.0), start + 10)
        assert _firing(alerts) == [("PlaysDrop", {"market": "US"})], start


def test_a_rise_beyond_what_the_return_can_make_is_a_new_incident() -> None:
    """After a 50 % drop of the market, its return can at most double a series that had learnt all of it: an artist
    at 4 times its expected streams 5 minutes after the market came back is a new incident (a bot farm), notified;
    at 1.6 times it is the recovery."""
    alerts = _run(1900.0, 950.0, _surge(BACK_MIN + 5, 60.0, 15.0), BACK_MIN + 15)
    assert _firing(alerts) == [("PlaysDrop", {"market": "US"}), ("StreamsSurge", {"artist_id": "a1"})]
    alerts = _run(1900.0, 950.0, _surge(BACK_MIN + 5, 24.0, 15.0), BACK_MIN + 15)
    assert _firing(alerts) == [("PlaysDrop", {"market": "US"})]


def test_new_incidents_right_after_the_return_are_notified() -> None:
    """Right after the market came back: another market's surge (a slice apart from the incident's), a platform's
    failures (a metric family the incident never took) and the market's plays falling again (its own deviation
    again) are new incidents, each notified."""
    t = BACK_MIN + 5
    late = {m: [_row(m, "streams", "market", {"market": "BR"}, 30.0, 15.0, 0.9, 2),
                _row(m, "failure_rate", "platform", {"platform": "ios"}, 0.3, 0.01, 0.9, 3)]
            for m in range(t, t + 5)}  # fmt: skip
    alerts = _run(1900.0, 40.0, late, t + 10)
    assert _firing(alerts) == [("PlaysDrop", {"market": "US"}), ("StreamsSurge", {"market": "BR"}),
                               ("PlaybackFailuresUp", {"platform": "ios"})]  # fmt: skip
    folder = IncidentFolder()
    drop = anomaly_alert("PlaysDrop", "plays", {"market": "US"}, 40.0, 1900.0, 1)
    folder.fold([drop], pl.DataFrame(schema=DETECTION_SCHEMA))
    folder.fold([resolved_at(drop, ADOPTED_MIN)], pl.DataFrame(schema=DETECTION_SCHEMA))
    folder.observe("plays", {"market": "US"}, [T0 + m * MINUTE for m in range(BACK_MIN, t)], [1900.0] * (t - BACK_MIN))
    again = anomaly_alert("PlaysDrop", "plays", {"market": "US"}, 40.0, 1900.0, t)
    assert folder.fold([again], pl.DataFrame(schema=DETECTION_SCHEMA)) == [again]


def test_the_recovery_waits_for_the_slice_s_return_and_lasts_its_horizon() -> None:
    """While the market is still away (its alert resolved by adoption), a surge of the artist is not its return:
    notified. The return is seen from the mean of the last minutes (one good minute of a small slice does not say
    it); a surge 70 minutes after the return is past the recovery (the series adopt a return within 60 minutes):
    notified. The folder's state (the watched slice, its latest values, the return) survives a restart."""
    empty = pl.DataFrame(schema=DETECTION_SCHEMA)
    for minute, values, notified in (
        (BACK_MIN - 10, [40.0] * 40, True),  # still away
        (BACK_MIN + 1, [40.0, 40.0, 40.0, 1900.0], True),  # one good minute among low ones: not back yet
        (BACK_MIN + 10, [40.0] * 30 + [1900.0] * 5, False),  # back: the recovery
        (BACK_MIN + 75, [40.0] * 30 + [1900.0] * 5, True),  # past the recovery's horizon
    ):
        folder = IncidentFolder()
        drop = anomaly_alert("PlaysDrop", "plays", {"market": "US"}, 40.0, 1900.0, DROP_MIN + 2)
        folder.fold([drop], empty)
        folder.fold([resolved_at(drop, ADOPTED_MIN)], empty)
        assert folder.watching() == [("plays", {"market": "US"})]
        first = BACK_MIN - (len(values) - 5) if len(values) > 5 else BACK_MIN - 3
        windows = [T0 + (first + i) * MINUTE for i in range(len(values))]
        folder.observe("plays", {"market": "US"}, windows, values)
        restored = IncidentFolder()
        restored.load_state_dict(folder.state_dict())
        assert restored.state_dict() == folder.state_dict()
        surge = anomaly_alert("StreamsSurge", "streams", {"artist_id": "a1"}, 30.0, 15.0, minute)
        assert restored.fold([surge], empty) == ([surge] if notified else []), minute


def test_nothing_recovers_from_a_silence() -> None:
    """A market goes silent (its data late; no ratio bounds a return from nothing): after it is back, a surge of its
    own streams or of an artist is a new incident (a bot farm 7 minutes after a market's late data, on the market),
    notified; after a 98 % drop the same surge of the market's streams is its recovery."""
    empty = pl.DataFrame(schema=DETECTION_SCHEMA)
    for anomalous, dims, notified in (
        (0.0, {"market": "DE"}, True),
        (0.0, {"artist_id": "a1"}, True),
        (2.0, {"market": "DE"}, False),
    ):
        folder = IncidentFolder()
        silence = anomaly_alert("PlaysDrop", "plays", {"market": "DE"}, anomalous, 70.0, 2)
        folder.fold([silence], empty)
        folder.fold([resolved_at(silence, 40)], empty)
        values = [anomalous] * 3 + [70.0] * 5
        folder.observe("plays", {"market": "DE"}, [T0 + m * MINUTE for m in range(38, 46)], values)
        surge = anomaly_alert("StreamsSurge", "streams", dims, 100.0, 56.0, 50)
        assert folder.fold([surge], empty) == ([surge] if notified else []), (anomalous, dims)


def test_the_end_of_a_bot_farm_is_its_recovery_once_the_artist_left_the_heavy_hitters() -> None:
    """A bot farm pushes an artist from 1 to 40 streams a minute; its market's plays had learnt the bots' plays, and
    fall back when the farm stops: a drop of the market that is the farm's end (folded once the artist is seen back,
    here by leaving the watched entities: no point any more); before the artist is seen back, notified."""
    empty = pl.DataFrame(schema=DETECTION_SCHEMA)
    for seen_back, notified in ((True, False), (False, True)):
        folder = IncidentFolder()
        farm = anomaly_alert("StreamsSurge", "streams", {"artist_id": "a9"}, 40.0, 1.0, 2)
        folder.fold([farm], empty)
        folder.fold([resolved_at(farm, 60)], empty)
        windows = [T0 + m * MINUTE for m in range(58, 64)]
        folder.observe("streams", {"artist_id": "a9"}, windows, [40.0] * 3 + ([math.nan] if seen_back else [40.0]) * 3)
        drop = anomaly_alert("PlaysDrop", "plays", {"market": "IN"}, 15.0, 25.0, 64)
        assert folder.fold([drop], empty) == ([drop] if notified else []), seen_back
