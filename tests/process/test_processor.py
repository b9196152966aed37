"""MusicDataProcessor: metric values per window and dimension set, windowing by watermark, heavy hitters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl
import pytest

from tests.conftest import BASE_MS
from tunewatch.process import MusicDataProcessor
from tunewatch.process.dimensions import OTHER
from tunewatch.validate import EnterpriseDataValidator

Play = Callable[..., dict[str, Any]]


def _row(result: Any, dimset: str, **dims: str) -> dict[str, Any]:
    cond = pl.col("dimset") == dimset
    for k, v in dims.items():
        cond &= pl.col(k) == v
    rows = result.metrics.filter(cond)
    assert rows.height == 1, rows
    return rows.row(0, named=True)


def test_catalogue_values_for_one_window(play: Play) -> None:
    events = []
    for i in range(40):
        skipped = i % 4 == 0  # 10 skips
        events.append(
            play(
                i,
                BASE_MS + i * 1000,
                ms_played=5_000 if skipped else 60_000,
                reason_end="fwdbtn" if skipped else "trackdone",
                startup_ms=100 + i,
                rebuffer_ms=600 if i < 10 else 0,
                bitrate_kbps=64 if i < 8 else 320,
                source="recommendation" if i < 20 else "playlist",
            )
        )
    events += [{**play(100 + i, BASE_MS + 50_000), "event_type": "error", "error_code": "cdn_5xx"} for i in range(10)]
    events += [
        {
            "event_id": f"ad{i}",
            "ts": BASE_MS + 20_000,
            "event_type": "ad",
            "user_id": "u1",
            "market": "BR",
            "platform": "android",
            "tier": "free",
            "ad_revenue_micros": 1_000,
        }
        for i in range(5)
    ]
    result = MusicDataProcessor().process(EnterpriseDataValidator().validate(events))
    g = _row(result, "global")
    assert g["plays"] == 40 and g["errors"] == 10 and g["ads"] == 5
    assert g["streams"] == 30
    assert g["skip_rate"] == pytest.approx(10 / 40)
    assert g["failure_rate"] == pytest.approx(10 / 50)
    assert g["low_quality_share"] == pytest.approx(8 / 40)
    assert g["rec_acceptance"] == pytest.approx(15 / 20)  # 5 of the 20 recommendation plays were skips
    assert g["ad_revenue_micros"] == 5_000
    assert g["est_revenue_micros"] > g["ad_revenue_micros"]
    assert g["unique_listeners"] == pytest.approx(40, abs=2)  # u0..u39
    assert g["startup_ms_p50"] == pytest.approx(120, rel=0.03)
    total_ms = 10 * 5_000 + 30 * 60_000
    assert g["rebuffer_ratio"] == pytest.approx(6_000 / total_ms)
    br = _row(result, "market,cdn", market="BR", cdn="edge-1")
    assert br["plays"] == 40


def test_windows_close_only_after_watermark_passes_lateness(play: Play) -> None:
    validator = EnterpriseDataValidator(allowed_lateness_ms=120_000)
    processor = MusicDataProcessor(allowed_lateness_ms=120_000)
    first = processor.process(validator.validate([play(i, BASE_MS + i * 1000) for i in range(30)]), final=False)
    assert first.windows == []  # watermark is still inside the first window
    later = [play(100 + i, BASE_MS + 240_000 + i) for i in range(5)]
    second = processor.process(validator.validate(later), final=False)
    assert second.windows == [BASE_MS]
    assert processor.flush().windows == [BASE_MS + 240_000]


def test_heavy_hitters_keep_top_tracks_and_fold_the_rest(play: Play) -> None:
    events = [play(i, BASE_MS + i, track_id="hit") for i in range(50)]
    events += [play(1000 + i, BASE_MS + i, track_id=f"rare{i}") for i in range(20)]
    result = MusicDataProcessor(top_k=1).process(EnterpriseDataValidator().validate(events))
    tracks = result.metrics.filter(pl.col("dimset") == "track_id")
    assert sorted(tracks.get_column("track_id").to_list()) == sorted(["hit", OTHER])
    assert _row(result, "track_id", track_id=OTHER)["plays"] == 20


def test_cache_items_cover_every_window_and_dimset(play: Play) -> None:
    result = MusicDataProcessor().process(EnterpriseDataValidator().validate([play(0, BASE_MS)]))
    items = result.cache_items()
    assert f"metrics:global:{BASE_MS}" in items
    assert items[f"metrics:market:{BASE_MS}"]["market"] == ["BR"]


@pytest.mark.parametrize("engine", ["compiled", "reference"])
def test_plays_without_startup_time_do_not_pull_the_quantiles_down(play: Play, engine: str) -> None:
    timed = [play(i, BASE_MS + i * 1000, startup_ms=500 + i) for i in range(20)]
    untimed = []
    for i in range(20, 40):
        event = play(i, BASE_MS + i * 1000)
        event.pop("startup_ms", None)
        untimed.append(event)
    result = MusicDataProcessor(engine=engine).process(EnterpriseDataValidator().validate(timed + untimed))
    g = _row(result, "global")
    assert g["plays"] == 40 and g["startup_n"] == 20
    assert g["startup_ms_p50"] == pytest.approx(510, rel=0.03)  # the 20 timed plays only, not 0 for the rest


def test_an_entity_prior_snapshot_answers_as_the_heavy_hitters_did_when_it_was_taken() -> None:
    """Replay aggregates the next batch while the current one is detected: the detection stage starts new entity
    series from a snapshot taken after its own batch, which later batches do not change (while the processor's
    live answer moves on)."""
    processor = MusicDataProcessor(top_k=2)
    hh = processor.heavy["artist_id"]
    t0, minute = 1_700_000_000_000, 60_000

    def feed(first: int, minutes: int, plays: dict[str, int]) -> None:
        for m in range(first, first + minutes):
            values = [v for v, n in plays.items() for _ in range(n)]
            hh.update(pl.Series("artist_id", values, dtype=pl.String), t0 + m * minute)

    feed(0, 120, {"a": 20, "b": 10, "c": 5})
    feed(120, 1, {"a": 20, "b": 10, "c": 5, "obscure": 8})  # a surge: "obscure" joins, with its rate before
    names = ["a", "obscure", "c", "unknown"]
    before = processor.entity_prior("artist_id", names)
    snapshot = processor.entity_prior_snapshot()
    assert np.isfinite(before[1]), "the surging artist joined with a rate before"
    np.testing.assert_array_equal(snapshot("artist_id", names), before)
    feed(121, 600, {"a": 20, "b": 10, "d": 9, "e": 8})  # hours later "obscure" has left, "d" and "e" joined
    after = processor.entity_prior("artist_id", ["obscure", "d", "e"])
    assert np.isnan(after[0]) and np.isfinite(after[1:]).any(), "the live answer moved on"
    np.testing.assert_array_equal(snapshot("artist_id", names), before)
    assert np.isnan(snapshot("artist_id", ["d", "e"])).all()
    assert np.isnan(snapshot("track_id", ["obscure"])).all()
