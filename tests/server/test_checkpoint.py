"""Checkpoints: detector state in the cache (a new service on the same Redis resumes what was learnt) and the
stream state in a file beside the database (remembered event ids, watermark, open windows)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.cache.conftest import redis_server  # noqa: F401 - the real redis-server fixture
from tests.cache.servers import RedisProcess
from tests.conftest import BASE_MS
from tests.server.servers import local_client
from tunewatch.cache import CacheConfig, MusicStreamingCacheManager
from tunewatch.ingest.batch import RawBatch, conform
from tunewatch.server import LiveService
from tunewatch.simulate import SimulationConfig, Simulator

pytestmark = pytest.mark.integration


def _service(url: str) -> LiveService:
    cache = MusicStreamingCacheManager(CacheConfig(redis_url=url))
    return LiveService(cache=cache, clock=lambda: BASE_MS / 1000 + 3 * 3600)


def test_a_restarted_service_resumes_its_detectors_from_redis(redis_server: RedisProcess) -> None:  # noqa: F811
    first = _service(redis_server.url)
    assert not first.restored_detectors  # nothing saved yet
    sim = Simulator(SimulationConfig(start=BASE_MS, minutes=25, events_per_minute=400, seed=6, incidents=False))
    for block in sim.blocks(1):
        first.ingest(RawBatch(frame=conform(block), source="test"))
    learnt = first.pipeline.detection.state_dict()
    first.pipeline.checkpoint(first.cache)

    second = _service(redis_server.url)
    assert second.restored_detectors
    resumed = second.pipeline.detection.state_dict()
    assert resumed["next_window"] == learnt["next_window"]
    plays_before, plays_after = learnt["metrics"]["plays"], resumed["metrics"]["plays"]
    assert plays_after["series"] == plays_before["series"]
    for name, array in plays_before["detector"].items():
        if isinstance(array, np.ndarray):
            assert np.array_equal(np.asarray(plays_after["detector"][name]), array), name


def test_a_damaged_checkpoint_is_ignored(redis_server: RedisProcess) -> None:  # noqa: F811
    service = _service(redis_server.url)
    service.cache.set("checkpoint:detection", {"version": 99, "metrics": {}})
    fresh = _service(redis_server.url)
    assert not fresh.restored_detectors


def test_a_restarted_service_resumes_the_stream_from_its_data_directory(tmp_path: Path) -> None:
    """Event ids, watermark and open windows go to a file beside the database with the periodic checkpoint."""
    db = tmp_path / "tunewatch.db"
    first = LiveService(db=db, clock=lambda: BASE_MS / 1000 + 3 * 3600)
    assert first.stream_state is not None and not first.pipeline.stream_restored
    sim = Simulator(SimulationConfig(start=BASE_MS, minutes=11, events_per_minute=300, seed=6, incidents=False))
    blocks = [RawBatch(frame=conform(block), source="test") for block in sim.blocks(1)]
    for batch in blocks[:-2]:
        first.ingest(batch)
    assert first.stream_state.wait(timeout=60)
    assert first.stream_state.path == db.with_suffix(".stream-state") and first.stream_state.last_size > 0

    second = LiveService(db=db, clock=lambda: BASE_MS / 1000 + 3 * 3600)
    assert second.pipeline.stream_restored
    assert second.pipeline.validator.watermark.value is not None
    again = second.ingest(blocks[0])  # sent before the checkpoint: every event is known (or rejected as before)
    assert again.accepted == 0 and again.duplicates > 0
    assert second.status()["received"] == again.received == again.accepted + again.rejected + again.duplicates

    assert second.ingest(blocks[-2]).accepted > 0
    second.checkpoint()  # a clean shutdown's final checkpoint covers the very last batch too
    third = LiveService(db=db, clock=lambda: BASE_MS / 1000 + 3 * 3600)
    last = third.ingest(blocks[-2])
    assert third.pipeline.stream_restored and last.accepted == 0 and last.duplicates > 0


def test_an_in_memory_service_keeps_no_stream_state() -> None:
    service = LiveService(clock=lambda: BASE_MS / 1000 + 3 * 3600)
    assert service.stream_state is None and not service.pipeline.stream_restored


def test_the_server_checkpoints_at_a_clean_shutdown(tmp_path: Path) -> None:
    """Stopping the app (lifespan end, as on SIGTERM) writes the stream state: events posted just before the
    stop are duplicates after the restart, although no periodic checkpoint had run yet."""
    import json

    from tunewatch.server import create_app

    db = tmp_path / "tunewatch.db"
    sim = Simulator(SimulationConfig(start=BASE_MS, minutes=2, events_per_minute=200, seed=9, incidents=False))
    frame = next(iter(sim.blocks(2)))
    body = json.dumps(frame.head(200).to_dicts(), default=str)
    service = LiveService(db=db, clock=lambda: BASE_MS / 1000 + 3 * 3600)
    with local_client(create_app(service)) as client:
        first = client.post("/api/v1/events", content=body).json()
    assert first["accepted"] > 0 and db.with_suffix(".stream-state").exists()
    restarted = LiveService(db=db, clock=lambda: BASE_MS / 1000 + 3 * 3600)
    with local_client(create_app(restarted)) as client:
        again = client.post("/api/v1/events", content=body).json()
    assert again["accepted"] == 0 and again["duplicates"] == first["accepted"]
