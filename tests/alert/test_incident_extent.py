"""How far an incident reaches: what it still takes after its opening alert resolved because its detector adopted
the change (its continuation), what its return explains (only where its traffic was), a coarser slice that moves
only by the incident's own excess, and a count of the slice's traffic (its ads) falling with that traffic.

Each case is checked both ways: what the incident takes, and what is still notified as an incident of its own."""

from __future__ import annotations

import math
from typing import Any

import polars as pl

from tests.alert.pooled import MINUTE, T0, anomaly_alert, resolved_at
from tunewatch.alert.incidents import IncidentFolder
from tunewatch.detect.stage import DETECTION_SCHEMA

EMPTY = pl.DataFrame(schema=DETECTION_SCHEMA)


def _rows(minute: int, metric: str, slices: list[tuple[str, dict[str, str], float, float]]) -> pl.DataFrame:
    """One window's detections of ``metric``: (dimension set, slice, value, expected) a row."""
    rows: list[dict[str, Any]] = [
        {"window_start": T0 + minute * MINUTE, "metric": metric, "sid": i, "dimset": dimset, **dims, "value": value,
         "weight": 1.0, "evidence_weight": 50.0, "expected": expected, "score": 0.9}
        for i, (dimset, dims, value, expected) in enumerate(slices)
    ]  # fmt: skip
    return pl.DataFrame(rows, schema=DETECTION_SCHEMA)


def _z_score(z: float) -> float:
    """The detector's score for ``z`` deviations."""
    return z * z / (z * z + 16.0)


def _bot_farm(folder: IncidentFolder, values_after: list[float]) -> None:
    """A bot farm lifts artist a9 from 1 to 40 streams a minute at minute 0, with its track t1 (folded while live);
    the artist's alert resolves at minute 60 (its detector adopted the level), and the artist's streams of minutes
    58-63 are ``values_after``-ended (NaN: the artist left the heavy hitters: back)."""
    farm = anomaly_alert("StreamsSurge", "streams", {"artist_id": "a9"}, 40.0, 1.0, 0)
    track = anomaly_alert("StreamsSurge", "streams", {"track_id": "t1"}, 30.0, 0.5, 1)
    rows = _rows(1, "streams", [("artist_id", {"artist_id": "a9"}, 40.0, 1.0),
                                ("track_id", {"track_id": "t1"}, 30.0, 0.5)])  # fmt: skip
    assert folder.fold([farm], rows) == [farm]
    assert folder.fold([track], rows) == []
    folder.fold([resolved_at(track, 59)], EMPTY)
    (end,) = folder.fold([resolved_at(farm, 60)], EMPTY)
    assert end.status == "resolved"
    windows = [T0 + m * MINUTE for m in range(58, 64)]
    folder.observe("streams", {"artist_id": "a9"}, windows, [40.0] * 3 + values_after)


def test_a_part_of_an_adopted_change_that_fires_again_while_it_goes_on_is_not_a_new_incident() -> None:
    """The bot farm goes on after the artist's alert resolved (seen still at 40 a minute): its track firing again
    is the same incident, unsaid; a track it never took is notified; once the artist is seen back, the track's
    surge is new and notified."""
    folder = IncidentFolder()
    _bot_farm(folder, [40.0] * 3)
    again = anomaly_alert("StreamsSurge", "streams", {"track_id": "t1"}, 30.0, 8.0, 65)
    assert folder.fold([again], EMPTY) == []
    other = anomaly_alert("StreamsSurge", "streams", {"track_id": "t2"}, 30.0, 8.0, 66)
    assert folder.fold([other], EMPTY) == [other]

    back = IncidentFolder()
    _bot_farm(back, [math.nan] * 3)
    again = anomaly_alert("StreamsSurge", "streams", {"track_id": "t1"}, 30.0, 8.0, 65)
    assert back.fold([again], EMPTY) == [again]


def test_an_alert_that_resolved_without_being_seen_away_is_not_continued() -> None:
    """No values of the artist after its alert resolved (nothing watched yet): its track firing again is notified,
    as before this rule."""
    folder = IncidentFolder()
    farm = anomaly_alert("StreamsSurge", "streams", {"artist_id": "a9"}, 40.0, 1.0, 0)
    folder.fold([farm], EMPTY)
    folder.fold([resolved_at(farm, 60)], EMPTY)
    again = anomaly_alert("StreamsSurge", "streams", {"artist_id": "a9"}, 40.0, 8.0, 65)
    assert folder.fold([again], EMPTY) == [again]


def test_the_return_of_an_artist_explains_only_a_drop_that_begins_with_it() -> None:
    """After the farm's end (artist seen back at minute 61-63), a market's plays drop beginning at once is the
    farm's end (its market had learnt the bots' plays); the same drop of a market the farm never touched,
    beginning 20 minutes later, is a traffic drop of its own and notified."""
    for start, notified in ((64, False), (84, True)):
        folder = IncidentFolder()
        _bot_farm(folder, [math.nan] * 3)
        drop = anomaly_alert("PlaysDrop", "plays", {"market": "TR"}, 15.0, 25.0, start)
        assert folder.fold([drop], EMPTY) == ([drop] if notified else []), start


def test_a_coarser_slice_is_the_incident_s_while_the_rest_of_it_stays_within_its_noise() -> None:
    """During the bot farm (artist a9: 50 streams a minute over its expected), the whole service's streams surge by
    110: the 60 left without the artist are within the service's noise at 4.5 deviations for the 110 (2.5 for the
    60), so it is the farm's; at 8 deviations for the 110 (4.4 for the 60), the rest surges on its own and is
    notified. (Another artist carries the 60: the farm's artist does not explain the service by the drill-down.)"""
    for z, notified in ((4.5, False), (8.0, True)):
        folder = IncidentFolder(group_wait_ms=0)
        rows = _rows(0, "streams", [("artist_id", {"artist_id": "a9"}, 51.0, 1.0), ("global", {}, 1110.0, 1000.0)])
        farm = anomaly_alert("StreamsSurge", "streams", {"artist_id": "a9"}, 51.0, 1.0, 0)
        assert folder.fold([farm], rows) == [farm]
        later = _rows(7, "streams", [("artist_id", {"artist_id": "a9"}, 51.0, 1.0), ("global", {}, 1110.0, 1000.0),
                                     ("artist_id", {"artist_id": "a2"}, 160.0, 100.0)])  # fmt: skip
        surge = anomaly_alert("StreamsSurge", "streams", {}, 1110.0, 1000.0, 7, score=_z_score(z))
        assert folder.fold([surge], later) == ([surge] if notified else []), z


def test_a_slice_s_ads_falling_with_its_traffic_are_part_of_its_traffic_drop() -> None:
    """A market's plays fall to 30 % at minute 0; 20 minutes in, its free tier's ads at 3 of 10 expected fall with
    the traffic (folded); at 0 of 40 expected they fall beyond it (below 30 % of 40, less 3 deviations) and are
    notified."""
    for value, expected, notified in ((3.0, 10.0, False), (0.0, 40.0, True)):
        folder = IncidentFolder(group_wait_ms=0)
        drop = anomaly_alert("PlaysDrop", "plays", {"market": "AU"}, 30.0, 100.0, 0)
        assert folder.fold([drop], _rows(0, "plays", [("market", {"market": "AU"}, 30.0, 100.0)])) == [drop]
        ads = anomaly_alert("AdImpressionsDrop", "ads", {"market": "AU", "tier": "free"}, value, expected, 20)
        rows = _rows(20, "ads", [("market,tier", {"market": "AU", "tier": "free"}, value, expected)])
        assert folder.fold([ads], rows) == ([ads] if notified else []), value


def test_a_cdn_carrying_most_of_a_market_and_all_of_its_failures_is_the_root() -> None:
    """A market's failures all come from its main CDN (60 of its 80 plays a minute, failing at 50 %), over 3 pooled
    minutes: the market's alert is re-rooted to the market's CDN, as the other CDN was spared (0 excess where 19
    a minute were due at the CDN's rate). The same failure rate on both CDNs is the market's."""
    for other_rate, root in ((0.01, {"market": "SE", "cdn": "cloudfront"}), (0.5, {"market": "SE"})):
        rows = pl.DataFrame([
            {"window_start": T0, "metric": "failure_rate", "sid": i, "dimset": dimset, **dims, "value": value,
             "weight": weight, "evidence_weight": weight, "expected": 0.01, "score": 0.9, "evidence_points": 3.0,
             "evidence_excess": 3.0 * (value - 0.01) * weight}
            for i, (dimset, dims, value, weight) in enumerate([
                ("market", {"market": "SE"}, (60 * 0.5 + 20 * other_rate) / 80, 80.0),
                ("market,cdn", {"market": "SE", "cdn": "cloudfront"}, 0.5, 60.0),
                ("market,cdn", {"market": "SE", "cdn": "akamai"}, other_rate, 20.0),
            ])
        ], schema=DETECTION_SCHEMA)  # fmt: skip
        alert = anomaly_alert("PlaybackFailuresUp", "failure_rate", {"market": "SE"}, 0.37, 0.01, 0)
        (note,) = IncidentFolder(group_wait_ms=0).fold([alert], rows)
        assert {k: v for k, v in note.labels.items() if k in ("market", "cdn")} == root, other_rate


def test_a_market_s_streams_coming_back_after_its_cdn_failed_are_the_outage_s_recovery() -> None:
    """A CDN fails half of a market's plays from minute 0 to 40 (its streams fall with them, unalerted): the market's
    streams surging back 3 minutes after the CDN is seen back are the outage's recovery; another market's surge is
    not (it shares none of the outage's traffic)."""
    for market, notified in (("GB", False), ("FR", True)):
        folder = IncidentFolder(group_wait_ms=0)
        outage = anomaly_alert("PlaybackFailuresUp", "failure_rate", {"market": "GB", "cdn": "gcore"}, 0.5, 0.01, 0)
        assert folder.fold([outage], EMPTY) == [outage]
        (end,) = folder.fold([resolved_at(outage, 40)], EMPTY)
        assert end.status == "resolved"
        windows = [T0 + m * MINUTE for m in range(38, 44)]
        folder.observe("failure_rate", {"market": "GB", "cdn": "gcore"}, windows, [0.5, 0.5, 0.01, 0.01, 0.01, 0.01])
        surge = anomaly_alert("StreamsSurge", "streams", {"market": market}, 60.0, 40.0, 46)
        assert folder.fold([surge], EMPTY) == ([surge] if notified else []), market
