"""The default pack's ad rules (issue 13): a free tier's ad drop is named on its market x tier slice by both
ad rules, and their two alerts are one incident, one notification."""

from __future__ import annotations

import polars as pl

from tests.alert.pooled import MINUTE, T0
from tunewatch.alert.engine import AlertEngine, watched_dimensions
from tunewatch.alert.rules import load_rules
from tunewatch.detect.stage import DETECTION_SCHEMA

METRICS = pl.DataFrame({"window_start": [T0], "dimset": ["market"], "market": ["TR"], "est_revenue_micros": [1e6]})
CALM, DROP = 40, 12  # minutes before the drop, minutes of the drop
PRICE = 2_750.0  # ad revenue (micros) of one impression


def _ad_drop() -> pl.DataFrame:
    """TR's free tier (all of TR's ads) serves 12 ads a minute, then 1 for 12 minutes; the whole service's 60 a
    minute fall by a sixth (its detector does not call that a deviation). Each slice in both ad metrics."""
    series = [  # dimset, dims, ads before, ads during, score during
        ("global", {}, 60.0, 49.0, 0.2),
        ("market", {"market": "TR"}, 12.0, 1.0, 0.9),
        ("market,tier", {"market": "TR", "tier": "free"}, 12.0, 1.0, 0.9),
    ]
    rows = []
    for m, (metric, scale) in enumerate((("ads", 1.0), ("ad_revenue_micros", PRICE))):
        for s, (dimset, dims, before, during, score) in enumerate(series):
            for i in range(CALM + DROP):
                hit = i >= CALM
                rows.append({"window_start": T0 + i * MINUTE, "metric": metric, "sid": 3 * m + s, "dimset": dimset,
                             **dims, "value": (during if hit else before) * scale, "expected": before * scale,
                             "weight": 1.0, "lower": 0.0, "score": score if hit else 0.01})  # fmt: skip
    return pl.DataFrame(rows, schema=DETECTION_SCHEMA).sort("window_start", "metric", "sid")


def test_both_ad_rules_watch_the_market_s_ad_tiers() -> None:
    watched = watched_dimensions(load_rules(None))
    assert "market,tier" in watched["AdRevenueDrop"] and "market,tier" in watched["AdImpressionsDrop"]


def test_a_free_tier_s_ad_drop_is_one_notification_on_its_market_x_tier() -> None:
    """Impressions and revenue of TR's free tier fall together (the market's are the same ads). One incident is
    notified, on market=TR, tier=free, the other ad alert folded into it; with revenue watched on the market,
    the revenue alert named the market and the impressions alert on the free tier folded under it."""
    engine = AlertEngine(load_rules(None))
    frame = _ad_drop()
    notified = []
    for i in range(CALM + DROP):  # minute by minute, as a live stream closes them
        minute = frame.filter(pl.col("window_start") == T0 + i * MINUTE)
        notified += [a for a in engine.evaluate(minute, METRICS) if a.status == "firing"]
    (note,) = notified
    assert {k: note.labels.get(k) for k in ("market", "tier")} == {"market": "TR", "tier": "free"}
    assert note.labels["alertname"] in ("AdImpressionsDrop", "AdRevenueDrop")
    (live,) = engine.active()  # the incident as it stands, with what joined it after its notification
    assert live.labels == note.labels
    folded = {(f["alertname"], tuple(sorted(f["dims"].items()))) for f in live.extra.get("also_affected", [])}
    other = ({"AdImpressionsDrop", "AdRevenueDrop"} - {note.labels["alertname"]}).pop()
    assert (other, (("market", "TR"), ("tier", "free"))) in folded
    assert (note.extra["fired_at"] - (T0 + CALM * MINUTE)) / MINUTE <= 5
