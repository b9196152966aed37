"""One pipeline-state format: ``tunewatch serve`` and a distributed worker write the same snapshot, and each
resumes from what the other wrote (real redis-server, real files)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cache.servers import RedisProcess
from tests.distributed.helpers import simulated_batches
from tunewatch.distributed import Publisher, Worker, WorkerConfig
from tunewatch.distributed.checkpoint import CheckpointStore
from tunewatch.distributed.connection import connect
from tunewatch.pipeline.core import Pipeline
from tunewatch.pipeline.snapshot import COMPONENT, VERSION, SnapshotCodec, restore
from tunewatch.pipeline.stream_state import MAGIC, StreamStateCodec
from tunewatch.server import LiveService
from tunewatch.simulate import SimulationConfig

pytestmark = pytest.mark.integration


def _clock() -> float:
    return SimulationConfig().start / 1000 + 3600


def test_serve_and_a_worker_write_and_read_the_same_snapshot_format(redis_server: RedisProcess, tmp_path: Path) -> None:
    batches = list(simulated_batches())
    client = connect(redis_server.url)
    Publisher(client, 1, batch_size=200).publish(batches[:2])
    worker = Worker(client, WorkerConfig(group="g", consumer="w", partitions=[0], block_ms=10), keyring=None)
    worker.setup()
    while worker.poll():
        pass
    worker.checkpoint_all()
    blob = CheckpointStore(client, "g").load_with_state(0).blob
    assert blob is not None

    db = tmp_path / "serve.db"
    service = LiveService(db=db, clock=_clock)
    for batch in batches[:2]:
        service.ingest(batch)
    service.checkpoint()
    file = db.with_suffix(".pipeline-state").read_bytes()

    codec = SnapshotCodec()
    from_worker, from_serve = codec.decode(blob, "worker blob"), codec.decode(file, "serve file")
    assert blob[: len(MAGIC)] == file[: len(MAGIC)] == MAGIC and blob[8:12] == file[8:12]  # container and version
    for snap in (from_worker, from_serve):
        assert not snap.adopted and snap.detection is not None and snap.alerts is not None
    assert from_worker.position == {"partition": 0, "last_id": worker.partitions[0].last_id}
    assert from_serve.position == {"wal_seq": service.pipeline.wal_seq}
    assert sorted(from_worker.stream) == sorted(from_serve.stream)
    assert from_worker.detection["next_window"] == from_serve.detection["next_window"]
    for data in (blob, file):
        tree = StreamStateCodec("test").decode(data)
        assert (tree["component"], tree["version"]) == (COMPONENT, VERSION)

    # serve resumes from the worker's blob: the events it saw are duplicates, its detectors are warm
    adopted_db = tmp_path / "from-worker.db"
    adopted_db.with_suffix(".pipeline-state").write_bytes(blob)
    resumed = LiveService(db=adopted_db, clock=_clock)
    assert resumed.restored is not None
    assert resumed.pipeline.detection.state_dict()["next_window"] == from_worker.detection["next_window"]
    again = resumed.ingest(batches[1])
    assert again.accepted == 0 and again.duplicates > 0

    # a worker's pipeline resumes from serve's file alike
    pipeline = Pipeline(worker.rules)
    restore(pipeline, from_serve)
    assert pipeline.detection.series_count == service.pipeline.detection.series_count > 0
    outcome = pipeline.ingest(batches[1]).validation
    assert outcome.accepted == 0 and outcome.duplicates > 0
