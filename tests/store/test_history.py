"""Metric history in Parquet day partitions: append, query one series, retention cleanup."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from tests.conftest import BASE_MS, make_play
from tests.server.servers import local_client
from tunewatch.process import MusicDataProcessor
from tunewatch.store.history import DAY_MS, MetricHistory
from tunewatch.validate import EnterpriseDataValidator


def _metrics(day_offset: int, n: int = 30) -> pl.DataFrame:
    t0 = BASE_MS + day_offset * DAY_MS
    events = [make_play(day_offset * 1000 + i, t0 + i * 20_000, market="BR" if i % 3 else "US") for i in range(n)]
    return MusicDataProcessor().process(EnterpriseDataValidator().validate(events)).metrics


def test_append_and_query_one_series_across_days(tmp_path: Path) -> None:
    history = MetricHistory(tmp_path / "h")
    written = history.append(_metrics(0)) + history.append(_metrics(1))
    assert written > 0
    assert len(history.days()) == 2
    br = history.query("plays", dimset="market", dims={"market": "BR"})
    assert br.height == 2 * 10  # 10 one-minute windows a day, both days
    assert br.get_column("value").sum() == 2 * 20
    one_day = history.query("plays", since_ms=BASE_MS + DAY_MS)
    assert one_day.get_column("window_start").min() >= BASE_MS + DAY_MS
    with pytest.raises(KeyError):
        history.query("no_such_metric")


def test_cleanup_drops_whole_days_beyond_retention(tmp_path: Path) -> None:
    history = MetricHistory(tmp_path / "h", retention_days=30)
    for day in (0, 10, 40):
        history.append(_metrics(day, n=3))
    dropped = history.cleanup(now_ms=BASE_MS + 40 * DAY_MS)
    assert len(dropped) == 2  # day 0 and day 10 are more than 30 days before day 40
    assert len(history.days()) == 1
    assert history.query("plays").height > 0


def test_the_service_keeps_history_beside_its_database(tmp_path: Path) -> None:
    from tunewatch.server import LiveService, create_app
    from tunewatch.simulate import SimulationConfig, Simulator

    service = LiveService(db=tmp_path / "tw.db", clock=lambda: BASE_MS / 1000 + 3600)
    client = local_client(create_app(service))
    sim = Simulator(SimulationConfig(start=BASE_MS, minutes=10, events_per_minute=200, seed=2, incidents=False))
    for block in sim.blocks(5):
        client.post("/api/v1/events", content=block.write_ndjson(), headers={"Content-Type": "application/x-ndjson"})
    assert (tmp_path / "tw.history").is_dir()
    body = client.get("/api/v1/history/plays", params={"dimset": "market", "market": "US"}).json()
    assert body["points"] and all(p["value"] >= 0 for p in body["points"])
    assert client.get("/api/v1/history/nope").status_code == 404
