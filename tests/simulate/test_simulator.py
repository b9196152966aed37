"""The simulator: deterministic, seasonal, realistic mixes, labelled incidents with visible effects."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tunewatch.ingest.readers import read_events
from tunewatch.schema import COUNTRY_CODES, FIELD_NAMES
from tunewatch.simulate import INCIDENT_KINDS, SimulationConfig, Simulator, write_stream
from tunewatch.simulate.world import build_world, market_rates
from tunewatch.validate import EnterpriseDataValidator


def _frame(sim: Simulator, minutes_per_block: int = 30) -> pl.DataFrame:
    return pl.concat(list(sim.blocks(minutes_per_block)))


@pytest.fixture(scope="module")
def three_hours() -> tuple[Simulator, pl.DataFrame]:
    sim = Simulator(SimulationConfig(minutes=180, events_per_minute=1500, seed=3))
    return sim, _frame(sim)


def test_same_seed_same_stream_whatever_the_block_size() -> None:
    a = _frame(Simulator(SimulationConfig(minutes=20, events_per_minute=500, seed=5)), 7)
    b = _frame(Simulator(SimulationConfig(minutes=20, events_per_minute=500, seed=5)), 20)
    c = _frame(Simulator(SimulationConfig(minutes=20, events_per_minute=500, seed=6)), 20)
    assert a.equals(b)
    assert not a.equals(c)


def test_schema_and_values_follow_the_contract(three_hours: tuple[Simulator, pl.DataFrame]) -> None:
    _, frame = three_hours
    assert frame.columns == list(FIELD_NAMES)
    clean = frame.filter(pl.col("market").is_in(list(COUNTRY_CODES)))
    assert clean.height / frame.height > 0.998
    plays = frame.filter(pl.col("event_type") == "play")
    share = frame.get_column("event_type").value_counts(normalize=True)
    assert plays.height / frame.height > 0.85
    assert 0.003 < share.filter(pl.col("event_type") == "error").item(0, "proportion") < 0.05
    ads = frame.filter(pl.col("event_type") == "ad")
    assert ads.height > 0 and (ads.get_column("tier") == "free").mean() > 0.99  # type: ignore[operator]
    # ms_played never exceeds the track's duration on clean plays; startup is a few hundred ms typically
    ok = plays.filter((pl.col("ms_played") >= 0) & (pl.col("track_duration_ms") > 0))
    assert (ok.get_column("ms_played") <= ok.get_column("track_duration_ms") + 5000).all()
    median_startup = plays.get_column("startup_ms").median()
    assert median_startup is not None and 150 < float(median_startup) < 600  # type: ignore[arg-type]


def test_zipf_popularity_and_realistic_skip_rate(three_hours: tuple[Simulator, pl.DataFrame]) -> None:
    _, frame = three_hours
    plays = frame.filter(pl.col("event_type") == "play")
    counts = plays.get_column("track_id").value_counts(sort=True).get_column("count").to_numpy()
    assert counts[0] > 5 * counts[100] > 0  # heavy head, long tail
    assert 0.005 < counts[0] / plays.height < 0.05  # but no single track dominates
    inferred = (plays.get_column("ms_played") < 30_000) & plays.get_column("reason_end").is_in(["fwdbtn", "backbtn"])
    assert 0.12 < float(inferred.mean()) < 0.35  # type: ignore[arg-type]


def test_daily_seasonality_follows_local_time() -> None:
    world = build_world(7)
    hours = np.arange(24)
    start = 1_767_571_200_000  # Monday 00:00 UTC
    us = world.market_index("US")
    jp = world.market_index("JP")
    rates = np.array([market_rates(world, start + h * 3_600_000, 1000.0) for h in hours])
    # the evening peak is at about 19-21 h local: ~0-2 h UTC in the US (UTC-5), ~10-12 h UTC in Japan (UTC+9)
    assert int(np.argmax(rates[:, us])) in (0, 1, 2, 23)
    assert int(np.argmax(rates[:, jp])) in (9, 10, 11, 12)
    assert rates[:, us].max() > 2.5 * rates[:, us].min()


def test_one_incident_of_each_kind_with_dims_and_times(three_hours: tuple[Simulator, pl.DataFrame]) -> None:
    sim, _ = three_hours
    labels = sim.labels()
    kinds = [i["kind"] for i in labels["incidents"]]
    assert sorted(kinds) == sorted(INCIDENT_KINDS)
    starts = [i["start"] for i in labels["incidents"]]
    assert starts == sorted(starts)
    dims = {i["kind"]: i["dims"] for i in labels["incidents"]}
    assert set(dims["cdn_outage"]) == {"market", "cdn"}
    assert dims["ad_server_failure"] == {}
    assert dims["rec_regression"] == {"source": "recommendation"}
    assert set(dims["app_regression"]) == {"platform"}


def _window(sim: Simulator, kind: str) -> tuple[dict[str, str], int, int]:
    inc = next(i for i in sim.schedule if i.kind == kind)
    return inc.dims, inc.start, inc.end


def test_incident_effects_are_visible(three_hours: tuple[Simulator, pl.DataFrame]) -> None:
    sim, frame = three_hours
    dims, start, end = _window(sim, "cdn_outage")
    seg = frame.filter((pl.col("market") == dims["market"]) & (pl.col("cdn") == dims["cdn"]))
    during = seg.filter(pl.col("ts").is_between(start, end, closed="left"))
    before = seg.filter(pl.col("ts") < start)
    fail = lambda f: (f.get_column("event_type") == "error").sum() / max(f.height, 1)  # noqa: E731
    assert fail(during) > 10 * fail(before)

    dims, start, end = _window(sim, "bot_farm")
    market = frame.filter(pl.col("market") == dims["market"])
    per_min = market.group_by(pl.col("ts") // 60_000).len()
    during_rate = per_min.filter(pl.col("ts").is_between(start // 60_000 + 1, end // 60_000 - 1)).get_column("len")
    before_rate = per_min.filter(pl.col("ts") < start // 60_000).get_column("len")
    assert during_rate.mean() > 1.8 * before_rate.mean()  # type: ignore[operator]

    _, start, end = _window(sim, "ad_server_failure")
    ads = frame.filter(pl.col("event_type") == "ad")
    assert (
        ads.filter(pl.col("ts").is_between(start, end)).height
        < 0.3 * ads.filter(pl.col("ts").is_between(start - (end - start), start)).height
    )


def test_late_data_arrives_more_than_ten_minutes_late(three_hours: tuple[Simulator, pl.DataFrame]) -> None:
    sim, frame = three_hours
    dims, start, end = _window(sim, "late_data")
    rows = frame.with_row_index("pos").filter(
        (pl.col("market") == dims["market"]) & pl.col("ts").is_between(start + 60_000, end - 60_000)
    )
    assert rows.height > 0
    # events written just before them in the file are >= 10 minutes newer
    newest_before = frame.get_column("ts").cum_max().gather(rows.get_column("pos"))
    assert ((newest_before - rows.get_column("ts")) >= 10 * 60_000).mean() > 0.95  # type: ignore[operator]


def test_dirty_and_duplicate_rows_are_rejected_for_their_reason(three_hours: tuple[Simulator, pl.DataFrame]) -> None:
    sim, frame = three_hours
    result = EnterpriseDataValidator(allowed_lateness_ms=10**12).validate(frame)
    assert result.received == frame.height == sim.generated
    assert result.received == result.accepted + result.rejected_count + result.duplicates
    assert abs(result.duplicates - sim.duplicates) <= 0.1 * sim.duplicates + 5
    assert 0.5 * sim.dirty <= result.rejected_count <= 1.5 * sim.dirty + 5
    reasons = set(result.reason_counts)
    for expected in ("market: unknown_country", "event_type: not_in_enum", "ts: future", "user_id: missing"):
        assert expected in reasons


@pytest.mark.parametrize(
    "name", ["e.ndjson", "e.ndjson.gz", "e.csv", "e.csv.gz", "e.csv.zst", "e.ndjson.zst", "e.parquet"]
)
def test_writers_round_trip_through_the_readers(tmp_path: Path, name: str) -> None:
    sim = Simulator(SimulationConfig(minutes=12, events_per_minute=300, seed=9))
    path = tmp_path / name
    n = write_stream(sim, path, minutes_per_block=5)
    assert n == sim.generated > 0
    back = pl.concat([b.frame for b in read_events(path)])
    assert back.height == n
    again = pl.concat(list(Simulator(SimulationConfig(minutes=12, events_per_minute=300, seed=9)).blocks(5)))
    assert back.get_column("event_id").to_list() == again.get_column("event_id").to_list()


def test_cli_writes_events_and_labels(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tunewatch.cli.main import app

    out = tmp_path / "day.ndjson"
    res = CliRunner().invoke(app, ["simulate", "--minutes", "120", "--rate", "200", "--seed", "2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    labels = json.loads((tmp_path / "day.labels.json").read_text())
    assert len(labels["incidents"]) == 7
    assert sum(1 for _ in out.open()) == labels["events"]
