"""Folding that does not depend on the order the engine lists one minute's alerts in; siblings under one parent;
an entity that turns up long after its incident was notified."""

from __future__ import annotations

from typing import Any

import polars as pl

from tests.alert.pooled import MINUTE, T0
from tunewatch.alert.incidents import IncidentFolder
from tunewatch.alert.model import Alert
from tunewatch.detect.stage import DETECTION_SCHEMA


def _alert(name: str, metric: str, dims: dict[str, str], *, started: int = T0, fired: int = T0 + MINUTE) -> Alert:
    labels = {"alertname": name, "severity": "warning", "metric": metric, **dims}
    extra = {"rule_kind": "anomaly", "fired_at": fired}
    return Alert(labels=labels, annotations={"summary": name}, status="firing", starts_at=started, extra=extra)


def _frame(metric: str, rows: list[tuple[str, dict[str, str], float, float, float]]) -> pl.DataFrame:
    """The same detections in each of the first 100 minutes from T0: (dimset, slice, value, expected, weight)."""
    data: list[dict[str, Any]] = [
        {"window_start": T0 + m * MINUTE, "metric": metric, "sid": i, "dimset": d, **dims, "value": v,
         "weight": w, "expected": e, "score": 0.9}
        for m in range(100)
        for i, (d, dims, v, e, w) in enumerate(rows)
    ]  # fmt: skip
    return pl.DataFrame(data, schema=DETECTION_SCHEMA, strict=False)


def _low_quality() -> pl.DataFrame:
    """One CDN (fastly) serves low bitrates: its share jumps 5 % -> 60 % over 400 plays; DE and FR, which it
    partly serves, rise 5 % -> 30 % over 300 plays each."""
    return _frame("low_quality_share", [
        ("cdn", {"cdn": "fastly"}, 0.60, 0.05, 400.0),
        ("cdn", {"cdn": "akamai"}, 0.05, 0.05, 400.0),
        ("market", {"market": "DE"}, 0.30, 0.05, 300.0),
        ("market", {"market": "FR"}, 0.30, 0.05, 300.0),
    ])  # fmt: skip


def test_the_slice_with_most_of_a_minute_s_excess_opens_the_incident_whatever_the_order() -> None:
    """The engine may list the markets before the CDN that explains them: the CDN is still the one notification,
    and the markets are folded under it."""
    for order in (["DE", "FR", "fastly"], ["fastly", "FR", "DE"]):
        alerts = [
            _alert("LowQualityShareUp", "low_quality_share", {"cdn": o} if o == "fastly" else {"market": o})
            for o in order
        ]
        (note,) = IncidentFolder().fold(alerts, _low_quality())
        assert note.labels.get("cdn") == "fastly" and "market" not in note.labels
        affected = {tuple(e["dims"].values()) for e in note.extra.get("also_affected", [])}
        assert affected in (set(), {("DE",), ("FR",)})  # the note goes out before the markets are folded


def _rebuffering() -> pl.DataFrame:
    """ES's rebuffering rises on every CDN (0.2 % -> 0.5 %); so does ES as a whole; US's does not."""
    return _frame("rebuffer_ratio", [
        ("market", {"market": "ES"}, 0.005, 0.002, 900.0),
        ("market,cdn", {"market": "ES", "cdn": "fastly"}, 0.005, 0.002, 300.0),
        ("market,cdn", {"market": "ES", "cdn": "akamai"}, 0.005, 0.002, 300.0),
        ("market,cdn", {"market": "US", "cdn": "akamai"}, 0.006, 0.002, 300.0),
    ])  # fmt: skip


def test_a_sibling_under_a_parent_that_moves_with_it_joins_the_live_incident() -> None:
    """ES x akamai after ES x fastly: one incident (ES moves the same way); US x akamai is another market: its
    own notice. (No group wait: ES, which moves three times as much as ES x fastly, would hold its notice for a
    minute or two, waiting for ES's own alert.)"""
    folder = IncidentFolder(group_wait_ms=0)
    rows = _rebuffering()
    first = _alert("RebufferingUp", "rebuffer_ratio", {"market": "ES", "cdn": "fastly"})
    assert folder.fold([first], rows) == [first]
    later = _alert("RebufferingUp", "rebuffer_ratio", {"market": "ES", "cdn": "akamai"}, fired=T0 + 3 * MINUTE)
    assert folder.fold([later], rows) == []
    (incident,) = folder.active()
    (entry,) = incident.extra["also_affected"]
    assert entry["dims"] == {"market": "ES", "cdn": "akamai"} and entry["share_explained"] is None
    other = _alert("RebufferingUp", "rebuffer_ratio", {"market": "US", "cdn": "akamai"}, fired=T0 + 3 * MINUTE)
    assert folder.fold([other], rows) == [other]


def test_a_sibling_is_not_folded_when_their_parent_does_not_move() -> None:
    folder = IncidentFolder()
    rows = _rebuffering().with_columns(
        value=pl.when(pl.col("dimset") == "market").then(pl.lit(0.002)).otherwise(pl.col("value"))
    )
    folder.fold([_alert("RebufferingUp", "rebuffer_ratio", {"market": "ES", "cdn": "fastly"})], rows)
    later = _alert("RebufferingUp", "rebuffer_ratio", {"market": "ES", "cdn": "akamai"}, fired=T0 + 3 * MINUTE)
    assert folder.fold([later], rows) == [later]


def test_an_entity_that_explains_the_incident_is_its_own_notice_only_when_it_started_with_it() -> None:
    """A bot farm in BR: a track carrying most of BR's surge is a better root (its own notice) when it starts
    with the incident; 80 minutes into the incident, it is a detail of the incident already notified."""
    market = ("market", {"market": "BR"}, 90.0, 30.0, 0.0)
    rows = pl.concat([
        _frame("streams", [market]).filter(pl.col("window_start") == T0),  # the track is not streamed yet
        _frame("streams", [market, ("track_id", {"track_id": "trk-9"}, 55.0, 1.0, 0.0)]).filter(
            pl.col("window_start") > T0
        ),
    ])  # fmt: skip
    for delay, notified in ((2, True), (80, False)):
        folder = IncidentFolder()
        folder.fold([_alert("StreamsSurge", "streams", {"market": "BR"})], rows)
        track = _alert("StreamsSurge", "streams", {"track_id": "trk-9"}, started=T0 + delay * MINUTE,
                       fired=T0 + (delay + 1) * MINUTE)  # fmt: skip
        assert folder.fold([track], rows) == ([track] if notified else [])


def test_the_rest_of_the_traffic_never_opens_an_incident_even_with_the_largest_excess() -> None:
    """US x akamai fails; the tracks outside the heavy hitters (``_other``) carry more failures in all than the
    slice itself: the slice is still the notification, listed first or not, and ``_other`` is folded into it."""
    rows = _frame("failure_rate", [
        ("market,cdn", {"market": "US", "cdn": "akamai"}, 0.40, 0.02, 50.0),
        ("track_id", {"track_id": "_other"}, 0.10, 0.02, 400.0),
    ])  # fmt: skip
    for first in ("_other", "slice"):
        other = _alert("PlaybackFailuresUp", "failure_rate", {"track_id": "_other"})
        us = _alert("PlaybackFailuresUp", "failure_rate", {"market": "US", "cdn": "akamai"})
        (note,) = IncidentFolder().fold([other, us] if first == "_other" else [us, other], rows)
        assert note.labels.get("market") == "US" and note.labels.get("cdn") == "akamai"


def _startup() -> pl.DataFrame:
    """An android startup regression: android's p95 and akamai's (which serves it) deviate; after an hour android's
    detector has adopted the change (no excess left on it), while FR's p95, lifted by its android users, deviates,
    and so does ios's (a second regression)."""
    first = _frame("startup_ms_p95", [
        ("platform", {"platform": "android"}, 1900.0, 700.0, 40.0),
        ("cdn", {"cdn": "akamai"}, 1400.0, 700.0, 50.0),
        ("platform", {"platform": "ios"}, 600.0, 600.0, 60.0),
        ("market", {"market": "FR"}, 650.0, 650.0, 20.0),
    ]).filter(pl.col("window_start") < T0 + 60 * MINUTE)  # fmt: skip
    later = _frame("startup_ms_p95", [
        ("platform", {"platform": "android"}, 1900.0, 1900.0, 40.0),
        ("cdn", {"cdn": "akamai"}, 1400.0, 700.0, 50.0),
        ("platform", {"platform": "ios"}, 1600.0, 600.0, 60.0),
        ("market", {"market": "FR"}, 1700.0, 650.0, 20.0),
    ]).filter(pl.col("window_start") >= T0 + 60 * MINUTE)  # fmt: skip
    return pl.concat([first, later])


def test_after_adoption_overlapping_slices_of_the_same_change_are_parts_of_the_open_incident() -> None:
    """Once the alert that opened an incident has resolved (its level adopted the change) while the incident is
    still open, a market whose p95 the platform's regression lifts is a part of it, not a new notification; a
    disjoint slice of the same dimension (another platform) still is one."""
    rows = _startup()
    folder = IncidentFolder()
    android = _alert("StartupTimeUp", "startup_ms_p95", {"platform": "android"})
    cdn = _alert("StartupTimeUp", "startup_ms_p95", {"cdn": "akamai"}, fired=T0 + 2 * MINUTE)
    assert folder.fold([android], rows) == [android]
    assert folder.fold([cdn], rows) == []  # the CDN serving android: explained by it, folded
    ended = Alert(labels=android.labels, annotations=android.annotations, status="resolved", starts_at=T0,
                  ends_at=T0 + 61 * MINUTE, extra={**android.extra, "resolved_at": T0 + 62 * MINUTE})  # fmt: skip
    assert folder.fold([ended], rows) == []  # the CDN's alert still fires: the incident stays open
    fr = _alert("StartupTimeUp", "startup_ms_p95", {"market": "FR"}, started=T0 + 70 * MINUTE,
                fired=T0 + 73 * MINUTE)  # fmt: skip
    ios = _alert("StartupTimeUp", "startup_ms_p95", {"platform": "ios"}, started=T0 + 70 * MINUTE,
                 fired=T0 + 73 * MINUTE)  # fmt: skip
    assert folder.fold([fr], rows) == []
    assert folder.fold([ios], rows) == [ios]
    live = [a for a in folder.active() if a.labels.get("platform") == "android"]
    assert [{"market": "FR"} in [e["dims"] for e in a.extra["also_affected"]] for a in live] == [True]


def test_an_artist_opens_the_incident_before_its_track_of_equal_excess() -> None:
    """A bot farm on an artist with one watched track moves both series alike, in the same minute: the artist is
    the notification whatever the order the engine lists them in, the track is folded into it."""
    rows = _frame("streams", [
        ("artist_id", {"artist_id": "a0819"}, 10.0, 0.01, 0.0),
        ("track_id", {"track_id": "t02311"}, 10.0, 0.01, 0.0),
    ])  # fmt: skip
    for first in ("track", "artist"):
        track = _alert("StreamsSurge", "streams", {"track_id": "t02311"})
        artist = _alert("StreamsSurge", "streams", {"artist_id": "a0819"})
        (note,) = IncidentFolder().fold([track, artist] if first == "track" else [artist, track], rows)
        assert note.labels.get("artist_id") == "a0819" and "track_id" not in note.labels
