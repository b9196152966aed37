"""Checkpoints: the pipeline snapshot (detectors, stream state — remembered event ids, watermark, open windows —
and alert rules' state) in a file beside the database, or in the Redis cache of a service without a database file
(a new service on the same Redis resumes what was learnt)."""

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
from tunewatch.pipeline.snapshot import CACHE_KEY, LEGACY_DETECTION_KEY, CachedSnapshot, SnapshotFile
from tunewatch.pipeline.stream_state import StreamStateFile
from tunewatch.server import LiveService
from tunewatch.simulate import SimulationConfig, Simulator

pytestmark = pytest.mark.integration


def _service(url: str) -> LiveService:
    cache = MusicStreamingCacheManager(CacheConfig(redis_url=url))
    return LiveService(cache=cache, clock=lambda: BASE_MS / 1000 + 3 * 3600)


def test_a_restarted_service_resumes_its_detectors_from_redis(redis_server: RedisProcess) -> None:  # noqa: F811
    first = _service(redis_server.url)
    assert isinstance(first.snapshots, CachedSnapshot) and first.restored is None  # nothing saved yet
    sim = Simulator(SimulationConfig(start=BASE_MS, minutes=25, events_per_minute=400, seed=6, incidents=False))
    for block in sim.blocks(1):
        first.ingest(RawBatch(frame=conform(block), source="test"))
    learnt = first.pipeline.detection.state_dict()
    first.checkpoint()

    second = _service(redis_server.url)
    assert second.restored is not None
    resumed = second.pipeline.detection.state_dict()
    assert resumed["next_window"] == learnt["next_window"]
    plays_before, plays_after = learnt["metrics"]["plays"], resumed["metrics"]["plays"]
    assert plays_after["series"] == plays_before["series"]
    for name, array in plays_before["detector"].items():
        if isinstance(array, np.ndarray):
            assert np.array_equal(np.asarray(plays_after["detector"][name]), array), name


def test_a_damaged_checkpoint_is_ignored(redis_server: RedisProcess) -> None:  # noqa: F811
    service = _service(redis_server.url)
    service.cache.set(CACHE_KEY, b"TWSTREAM" + bytes(60))
    fresh = _service(redis_server.url)
    assert fresh.restored is None and fresh.pipeline.detection.series_count == 0


def test_a_restarted_service_resumes_the_stream_from_its_data_directory(tmp_path: Path) -> None:
    """Event ids, watermark and open windows go to a file beside the database with the periodic checkpoint."""
    db = tmp_path / "tunewatch.db"
    first = LiveService(db=db, clock=lambda: BASE_MS / 1000 + 3 * 3600)
    assert isinstance(first.snapshots, SnapshotFile) and first.restored is None
    sim = Simulator(SimulationConfig(start=BASE_MS, minutes=11, events_per_minute=300, seed=6, incidents=False))
    blocks = [RawBatch(frame=conform(block), source="test") for block in sim.blocks(1)]
    for batch in blocks[:-2]:
        first.ingest(batch)
    assert first.snapshots.wait(timeout=60)
    assert first.snapshots.path == db.with_suffix(".pipeline-state") and first.snapshots.last_size > 0

    second = LiveService(db=db, clock=lambda: BASE_MS / 1000 + 3 * 3600)
    assert second.restored is not None and second.pipeline.detection.series_count > 0
    assert second.pipeline.validator.watermark.value is not None
    again = second.ingest(blocks[0])  # sent before the checkpoint: every event is known (or rejected as before)
    assert again.accepted == 0 and again.duplicates > 0
    assert second.status()["received"] == again.received == again.accepted + again.rejected + again.duplicates

    assert second.ingest(blocks[-2]).accepted > 0
    second.checkpoint()  # a clean shutdown's final checkpoint covers the very last batch too
    third = LiveService(db=db, clock=lambda: BASE_MS / 1000 + 3 * 3600)
    last = third.ingest(blocks[-2])
    assert third.restored is not None and last.accepted == 0 and last.duplicates > 0


def test_an_in_memory_service_keeps_no_pipeline_state() -> None:
    service = LiveService(clock=lambda: BASE_MS / 1000 + 3 * 3600)
    assert service.snapshots is None and service.restored is None


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
    assert first["accepted"] > 0 and db.with_suffix(".pipeline-state").exists()
    restarted = LiveService(db=db, clock=lambda: BASE_MS / 1000 + 3 * 3600)
    with local_client(create_app(restarted)) as client:
        again = client.post("/api/v1/events", content=body).json()
    assert again["accepted"] == 0 and again["duplicates"] == first["accepted"]


def test_the_former_state_of_serve_is_adopted_once(tmp_path: Path, redis_server: RedisProcess) -> None:  # noqa: F811
    """Before the pipeline snapshot, serve kept the stream state in ``<db>.stream-state`` and the detectors in the
    cache (``checkpoint:detection``): a new service resumes both, and its first snapshot replaces the old file."""
    db = tmp_path / "tunewatch.db"
    sim = Simulator(SimulationConfig(start=BASE_MS, minutes=8, events_per_minute=300, seed=6, incidents=False))
    blocks = [RawBatch(frame=conform(block), source="test") for block in sim.blocks(1)]
    old = _service(redis_server.url)
    for batch in blocks:
        old.ingest(batch)
    legacy = db.with_suffix(".stream-state")
    StreamStateFile(legacy).save(old.pipeline.stream_state_dict())  # what the former serve wrote
    old.cache.set(LEGACY_DETECTION_KEY, old.pipeline.detection.state_dict())

    cache = MusicStreamingCacheManager(CacheConfig(redis_url=redis_server.url))
    adopted = LiveService(db=db, cache=cache, clock=lambda: BASE_MS / 1000 + 3 * 3600)
    assert adopted.restored is not None and adopted.restored.adopted == "stream-state file"
    assert adopted.pipeline.detection.series_count == old.pipeline.detection.series_count > 0
    again = adopted.ingest(blocks[-1])
    assert again.accepted == 0 and again.duplicates > 0
    adopted.checkpoint()
    assert db.with_suffix(".pipeline-state").exists() and not legacy.exists()

    restarted = LiveService(db=db, cache=cache, clock=lambda: BASE_MS / 1000 + 3 * 3600)
    assert restarted.restored is not None and restarted.restored.adopted == ""
