"""Detector state is checkpointed in the cache: a new service on the same Redis resumes what was learnt."""

from __future__ import annotations

import numpy as np
import pytest

from tests.cache.conftest import redis_server  # noqa: F401 - the real redis-server fixture
from tests.cache.servers import RedisProcess
from tests.conftest import BASE_MS
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
