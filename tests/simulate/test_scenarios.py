"""The scenario family: seeded draws over volume, markets, kind, depth, magnitude and duration; visible effects."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from tunewatch.cli.main import app
from tunewatch.simulate import SimulationConfig, Simulator
from tunewatch.simulate.scenarios import FAMILY, PlannedIncident, Scenario, draw_scenario

MIN = 60_000


def test_draws_are_seeded_and_cover_the_family() -> None:
    assert draw_scenario(1234) == draw_scenario(1234)
    draws = [draw_scenario(s) for s in range(1000, 1300)]
    assert {d.band for d in draws} == {"100-1k", "1k-10k", "10k-100k"}
    assert {d.incident.kind for d in draws} == set(FAMILY)
    assert all(100 <= d.events_per_minute <= 100_000 and 3 <= d.markets <= 30 for d in draws)
    assert all(10 <= d.incident.duration_minutes <= 180 for d in draws)
    assert {"global", "track_id", "artist_id", "market,tier"} <= {d.incident.depth for d in draws}
    for d in draws:
        lo, hi = FAMILY[d.incident.kind].magnitude
        assert lo <= d.incident.magnitude <= hi
        assert d.minutes > d.incident.start_minute + d.incident.duration_minutes  # a tail after the incident


def _run(kind: str, depth: str, magnitude: float, seed: int = 9) -> tuple[Simulator, pl.DataFrame, dict]:
    plan = PlannedIncident(kind, depth, magnitude, start_minute=20, duration_minutes=20)
    sim = Simulator(SimulationConfig(minutes=60, events_per_minute=3000, seed=seed, markets=5, plan=(plan,),
                                     dirty_rate=0.0, duplicate_rate=0.0))  # fmt: skip
    frame = pl.concat(list(sim.blocks(30)))
    (label,) = sim.incidents
    return sim, frame, label


def _inside(frame: pl.DataFrame, label: dict, dims: dict[str, str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    ts = pl.col("ts").cast(pl.Datetime("ms", "UTC"))
    start = datetime.fromisoformat(label["start"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(label["end"].replace("Z", "+00:00"))
    sl = frame.filter(pl.all_horizontal([pl.col(k) == v for k, v in dims.items()] or [pl.lit(True)]))
    return sl.filter((ts >= start) & (ts < end)), sl.filter((ts < start) | (ts >= end))


@pytest.mark.parametrize(
    ("kind", "depth"),
    [("failures", "market,cdn"), ("low_quality", "market"), ("traffic_drop", "platform"), ("ad_fill", "market,tier")],
)
def test_family_incidents_change_only_their_slice(kind: str, depth: str) -> None:
    _, frame, label = _run(kind, depth, FAMILY[kind].magnitude[1])
    assert set(label["dims"]) == set(depth.split(","))
    during, before = _inside(frame, label, label["dims"])

    def measure(f: pl.DataFrame, minutes: float) -> float:
        if kind == "failures":
            return (f.get_column("event_type") == "error").mean()  # type: ignore[return-value]
        if kind == "low_quality":
            plays = f.filter(pl.col("bitrate_kbps").is_not_null())
            return (plays.get_column("bitrate_kbps") < 96).mean()  # type: ignore[return-value]
        if kind == "ad_fill":
            return float((f.get_column("event_type") == "ad").sum()) / minutes
        return f.height / minutes

    now, usual = measure(during, 20), measure(before, 40)
    if kind in ("failures", "low_quality"):
        assert now > 3 * usual + 0.05, (now, usual)
    else:
        assert now < 0.3 * usual, (now, usual)


def test_a_bot_farm_on_an_unseen_artist_streams_tracks_nobody_played() -> None:
    _, frame, label = _run("bot_farm", "artist_id", 1.0)
    (artist,) = label["dims"].values()
    during, before = _inside(frame, label, {"artist_id": artist})
    assert before.height < 10 and during.height > 500  # obscure before (the Zipf tail: a few plays), surging during
    assert (during.get_column("ms_played") >= 30_000).mean() > 0.99  # streams, just past 30 s


def test_scenario_volume_band() -> None:
    plan = PlannedIncident("failures", "global", 0.1, 90, 10)
    assert [Scenario(1, v, 3, 130, plan).band for v in (100, 999, 1000, 50_000)] == [
        "100-1k", "100-1k", "1k-10k", "10k-100k"
    ]  # fmt: skip


def test_short_runs_hold_incidents_or_say_why(tmp_path: Path) -> None:
    assert len(Simulator(SimulationConfig(minutes=60, events_per_minute=100)).schedule) == 3
    assert len(Simulator(SimulationConfig(minutes=1440, events_per_minute=100)).schedule) == 7
    none = Simulator(SimulationConfig(minutes=40, events_per_minute=100))
    assert none.schedule == [] and "needs at least 43 minutes" in none.no_incidents_reason
    args = ["simulate", "--minutes", "40", "--rate", "50", "--out", str(tmp_path / "a.ndjson")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0 and "no incidents" in result.output and "43 minutes" in result.output


def test_start_now_ends_the_run_at_the_current_minute(tmp_path: Path) -> None:
    out = tmp_path / "now.ndjson"
    before = time.time()
    args = ["simulate", "--minutes", "30", "--rate", "50", "--start", "now", "--out", str(out), "--dirty-rate", "0"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    labels = json.loads((tmp_path / "now.labels.json").read_text())
    start = datetime.fromisoformat(labels["start"].replace("Z", "+00:00")).timestamp()
    assert before - 31 * 60 - 1 <= start <= before - 29 * 60
    newest = pl.read_ndjson(out).get_column("ts").max()
    assert isinstance(newest, int) and newest / 1000 <= time.time() + 60  # nothing ahead of the clock
    bad = CliRunner().invoke(app, ["simulate", "--minutes", "5", "--start", "yesterday", "--out", str(out)])
    assert bad.exit_code != 0 and "--start" in bad.output
