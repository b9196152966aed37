"""A worker taking a partition over resumes what the previous worker had learnt (real redis-server).

The stream is one partition: the first half of 20 simulated minutes, one entry re-sending an event of the first
half, then the second half. A reference worker (its own consumer group) processes it uninterrupted; worker A
processes the first half, worker B takes over. B must count the re-sent event as a duplicate and produce the same
per-minute metrics and detections as the reference for the windows it closes.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tests.cache.servers import RedisProcess, wait_until
from tests.distributed.helpers import simulated_batches, start_worker
from tunewatch.alert.model import Alert
from tunewatch.alert.rules import RuleSet, parse_rules
from tunewatch.distributed import EntryCommitter, Publisher, Worker, WorkerConfig
from tunewatch.distributed.checkpoint import CheckpointStore
from tunewatch.distributed.connection import RedisClient, connect
from tunewatch.distributed.keys import KeyLayout
from tunewatch.ingest.batch import RawBatch
from tunewatch.pipeline.stream_state import StreamStateCodec
from tunewatch.process.processor import ProcessingResult
from tunewatch.security.keyring import Keyring

pytestmark = pytest.mark.integration

LAYOUT = KeyLayout()
STATE_LOG = "tunewatch.distributed.worker"


@dataclass
class Stream:
    """What was published: entries of the first half, the re-send entry, entries in all."""

    first_half: int
    resend_id: str
    entries: int


@dataclass
class Windows:
    """The metrics and detections a worker delivered, per closed window."""

    metrics: list[pl.DataFrame] = field(default_factory=list)
    detections: list[pl.DataFrame] = field(default_factory=list)

    def __call__(self, _partition: int, processed: ProcessingResult, detections: pl.DataFrame) -> None:
        self.metrics.append(processed.metrics)
        if detections.height:
            self.detections.append(detections)

    def starts(self) -> set[int]:
        return {int(w) for frame in self.metrics for w in frame["window_start"].unique()}

    def frames(self, windows: set[int] | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
        out = []
        for parts in (self.metrics, self.detections):
            frame = pl.concat(parts, how="diagonal_relaxed")
            if windows is not None:
                frame = frame.filter(pl.col("window_start").is_in(sorted(windows)))
            out.append(frame.sort(frame.columns, nulls_last=True))
        return out[0], out[1]


def _publish(client: RedisClient) -> Stream:
    frames = [b.frame for b in simulated_batches()]
    publisher = Publisher(client, 1, batch_size=200)
    first = publisher.publish(RawBatch(frame=f, source="first") for f in frames[:2]).entries
    resent = frames[1].tail(1)  # the newest event of the first half, sent again after the takeover point
    publisher.publish([RawBatch(frame=resent, source="resent")])
    publisher.publish(RawBatch(frame=f, source="second") for f in frames[2:])
    ids = [i.decode() for i, _f in client.xrange(LAYOUT.stream(0))]
    return Stream(first_half=first, resend_id=ids[first], entries=len(ids))


def _worker(
    client: RedisClient,
    group: str,
    consumer: str,
    windows: Windows | None = None,
    *,
    read_count: int = 1,
    checkpoint_every: int = 1000,
) -> Worker:
    config = WorkerConfig(group=group, consumer=consumer, partitions=[0], read_count=read_count, block_ms=10,
                          claim_idle_ms=1, checkpoint_every=checkpoint_every)  # fmt: skip
    return Worker(client, config, on_metrics=windows, keyring=None)


def _drain(worker: Worker) -> None:
    worker.reclaim()
    while worker.poll():
        pass


def _reference(client: RedisClient) -> tuple[Windows, dict[str, int]]:
    windows = Windows()
    ref = _worker(client, "ref", "r", windows, read_count=10)
    ref.setup()
    _drain(ref)
    return windows, EntryCommitter(client, "ref").totals(0)


def _deliver_to_dead_consumer(client: RedisClient, consumer: str, count: int) -> None:
    """Deliver ``count`` entries to ``consumer``, which never processes them, and wait until they are claimable
    (pending for longer than the workers' 1 ms ``claim_idle_ms``)."""
    client.xreadgroup("g", consumer, {LAYOUT.stream(0): ">"}, count=count)

    def claimable() -> bool:
        pending = client.xpending_range(LAYOUT.stream(0), "g", "-", "+", count)
        return len(pending) == count and all(p["time_since_delivered"] >= 2 for p in pending)

    wait_until(claimable, 10, "the delivered entries to be pending for 2 ms")


def _process(worker: Worker, n: int) -> None:
    for _ in range(n):
        assert worker.poll() == 1


def _assert_same_windows(b: Windows, ref: Windows) -> None:
    assert b.starts() and b.starts() <= ref.starts()
    b_metrics, b_detections = b.frames()
    ref_metrics, ref_detections = ref.frames(b.starts())
    assert_frame_equal(b_metrics, ref_metrics)
    assert_frame_equal(b_detections, ref_detections)


def test_stopped_worker_is_resumed_by_its_replacement(redis_server: RedisProcess) -> None:
    client = connect(redis_server.url)
    stream = _publish(client)
    ref, ref_totals = _reference(client)

    a_windows = Windows()
    a = _worker(client, "g", "a", a_windows)
    a.setup()
    _process(a, stream.first_half)
    a.checkpoint_all()  # a clean stop
    stored = CheckpointStore(client, "g").load(0)
    assert stored is not None and stored.state_bytes > 0 and stored.last_id != stream.resend_id

    b_windows = Windows()
    b = _worker(client, "g", "b", b_windows)
    b.setup()
    assert (b.stats.states_restored, b.stats.states_ignored, b.stats.replayed) == (1, 0, 0)
    before = EntryCommitter(client, "g").totals(0)
    _process(b, 1)  # the entry re-sending an event a had accepted
    after = EntryCommitter(client, "g").totals(0)
    assert (after["duplicates"] - before["duplicates"], after["accepted"] - before["accepted"]) == (1, 0)
    _drain(b)

    assert EntryCommitter(client, "g").totals(0) == ref_totals  # accounting exactly as without the takeover
    assert b.partitions[0].pipeline.counters.balanced
    assert a_windows.starts().isdisjoint(b_windows.starts())
    assert a_windows.starts() | b_windows.starts() == ref.starts()
    _assert_same_windows(b_windows, ref)


def test_entries_acknowledged_after_the_last_checkpoint_are_replayed(redis_server: RedisProcess) -> None:
    client = connect(redis_server.url)
    stream = _publish(client)
    ref, ref_totals = _reference(client)
    every = 4
    assert stream.first_half % every, "the crash must come some entries after a checkpoint"

    a_windows = Windows()
    a = _worker(client, "g", "a", a_windows, checkpoint_every=every)
    a.setup()
    _process(a, stream.first_half)
    _deliver_to_dead_consumer(client, "a", 2)  # delivered to a, which then dies: no stop, no checkpoint
    del a

    b_windows = Windows()
    b = _worker(client, "g", "b", b_windows, checkpoint_every=every)
    b.setup()
    assert b.stats.states_restored == 1 and b.stats.replayed == stream.first_half % every
    assert b.partitions[0].last_id == client.xrange(LAYOUT.stream(0))[stream.first_half - 1][0].decode()
    assert b.reclaim() == 2  # the re-send entry and the next one, pending for a
    _drain(b)

    assert EntryCommitter(client, "g").totals(0) == ref_totals  # the re-sent event counted as a duplicate
    assert b.stats.redelivered == 0
    assert a_windows.starts().isdisjoint(b_windows.starts())  # replayed windows are not delivered twice
    assert a_windows.starts() | b_windows.starts() == ref.starts()
    _assert_same_windows(b_windows, ref)


@pytest.mark.slow
def test_sigkilled_worker_is_resumed_from_its_checkpoint(redis_server: RedisProcess) -> None:
    client = connect(redis_server.url)
    stream = _publish(client)
    ref, ref_totals = _reference(client)

    # a (a real process) checkpoints every 3 entries and dies before acknowledging its 11th: entry 10 was
    # acknowledged after its last checkpoint (at entry 9), entries 11-12 are pending for it
    a = start_worker(("--redis-url", redis_server.url), "--group", "g", "--partitions", "0", "--consumer", "a",
                     "--read-count", "2", "--checkpoint-every", "3", "--hold-before-ack-after", "11")  # fmt: skip
    wait_until(lambda: client.get("tw:held:a") is not None, 60, "worker a to hold an entry before its XACK")
    a.send_signal(signal.SIGKILL)
    a.wait(timeout=10)
    assert stream.first_half > 11

    b_windows = Windows()
    b = _worker(client, "g", "b", b_windows)
    b.setup()
    assert (b.stats.states_restored, b.stats.replayed) == (1, 1)
    assert b.reclaim() == 2
    _drain(b)
    assert EntryCommitter(client, "g").totals(0) == ref_totals
    _assert_same_windows(b_windows, ref)


def _checkpointed_first_half(client: RedisClient) -> Stream:
    stream = _publish(client)
    a = _worker(client, "g", "a")
    a.setup()
    _process(a, stream.first_half)
    a.checkpoint_all()
    return stream


def _state_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == STATE_LOG and r.levelno == logging.WARNING]


def test_damaged_state_blob_means_a_cold_start_with_one_warning(
    redis_server: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    client = connect(redis_server.url)
    stream = _checkpointed_first_half(client)
    key = LAYOUT.checkpoint_state(0, "g")
    blob = client.get(key)
    assert blob is not None
    client.setrange(key, len(blob) // 2, bytes([blob[len(blob) // 2] ^ 0xFF]))  # one byte flipped

    caplog.set_level(logging.WARNING, logger=STATE_LOG)
    b = _worker(client, "g", "b")
    b.setup()
    assert (b.stats.states_restored, b.stats.states_ignored, b.stats.replayed) == (0, 1, 0)
    assert b.partitions[0].pipeline.detection.series_count == 0  # cold
    b.reclaim()
    (warning,) = _state_warnings(caplog)
    assert "partition 0: checkpoint state ignored, its pipeline starts cold" in warning and "damaged" in warning

    before = EntryCommitter(client, "g").totals(0)
    _process(b, 1)  # without a's event ids, the re-sent event is accepted again
    after = EntryCommitter(client, "g").totals(0)
    assert (after["duplicates"] - before["duplicates"], after["accepted"] - before["accepted"]) == (0, 1)
    _drain(b)
    totals = EntryCommitter(client, "g").totals(0)
    assert totals["entries"] == stream.entries
    assert totals["received"] == totals["accepted"] + totals["rejected"] + totals["duplicates"]


def test_state_blob_of_another_moment_than_the_record_is_ignored(
    redis_server: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    client = connect(redis_server.url)
    stream = _publish(client)
    a = _worker(client, "g", "a")
    a.setup()
    _process(a, 3)
    a.checkpoint_all()
    old_blob = client.get(LAYOUT.checkpoint_state(0, "g"))
    _process(a, stream.first_half - 3)
    a.checkpoint_all()
    assert old_blob is not None
    client.set(LAYOUT.checkpoint_state(0, "g"), old_blob)  # e.g. a backup of the blob alone restored
    assert "of another moment" in (CheckpointStore(client, "g").load_with_state(0).state_problem() or "")

    caplog.set_level(logging.WARNING, logger=STATE_LOG)
    b = _worker(client, "g", "b")
    b.setup()
    assert (b.stats.states_restored, b.stats.states_ignored) == (0, 1)
    assert b.partitions[0].pipeline.detection.series_count == 0
    (warning,) = _state_warnings(caplog)
    assert "does not match the checkpoint record's digest" in warning
    _drain(b)  # the counters continue from the accounting, and the partition is processed to the end
    assert EntryCommitter(client, "g").totals(0)["entries"] == stream.entries


def _other_version(blob: bytes) -> bytes:
    state = StreamStateCodec("test").decode(blob)
    return StreamStateCodec("test").encode({**state, "version": 99})


def _older_stream_layout(blob: bytes) -> bytes:
    state = StreamStateCodec("test").decode(blob)
    return StreamStateCodec("test").encode({**state, "stream": {**state["stream"], "version": 0}})


@pytest.mark.parametrize(
    ("rewrite", "partition", "reason"),
    [
        (lambda _b: b"not a state blob", 0, "not a tunewatch stream-state file"),
        (_other_version, 0, "version 99 is not supported"),
        (_older_stream_layout, 0, "does not fit this pipeline"),
        (lambda b: b, 5, "taken for partition 0 at entry"),  # record and blob copied to partition 5's keys
    ],
    ids=["foreign", "other-version", "other-stream-layout", "other-partition"],
)
def test_unusable_state_blob_consistent_with_its_record_is_refused(
    redis_server: RedisProcess,
    caplog: pytest.LogCaptureFixture,
    rewrite: Callable[[bytes], bytes],
    partition: int,
    reason: str,
) -> None:
    client = connect(redis_server.url)
    _checkpointed_first_half(client)
    store = CheckpointStore(client, "g")
    saved = store.load_with_state(0)
    assert saved.record is not None and saved.blob is not None
    saved.record.partition = partition
    store.save(saved.record, rewrite(saved.blob))  # the record's digest matches the rewritten blob
    assert store.load_with_state(partition).state_problem() is None

    caplog.set_level(logging.WARNING, logger=STATE_LOG)
    b = Worker(client, WorkerConfig(group="g", consumer="b", partitions=[partition], block_ms=10), keyring=None)
    b.setup()
    assert (b.stats.states_restored, b.stats.states_ignored) == (0, 1)
    assert b.partitions[partition].pipeline.detection.series_count == 0
    (warning,) = _state_warnings(caplog)
    assert reason in warning


@pytest.mark.parametrize("pending", [2, 0], ids=["claimed-entries", "new-entries"])
def test_a_fresh_pipeline_restores_a_checkpoint_written_after_it_started(
    redis_server: RedisProcess, pending: int
) -> None:
    client = connect(redis_server.url)
    stream = _publish(client)
    b = _worker(client, "g", "b")
    b.setup()  # nothing checkpointed yet: b starts cold, and then has nothing to read for a while
    a = _worker(client, "g", "a", checkpoint_every=5)
    a.setup()
    _process(a, stream.first_half)
    if pending:
        _deliver_to_dead_consumer(client, "a", pending)  # a dies holding entries
    assert b.stats.states_restored == 0
    processed = b.reclaim() or b.poll()  # before its first entry, b picks up a's newer checkpoint
    assert processed == (pending or 1)
    assert b.stats.states_restored == 1 and b.stats.replayed == stream.first_half % 5
    _drain(b)
    assert EntryCommitter(client, "g").totals(0)["entries"] == stream.entries


def test_state_sealed_with_the_data_key_needs_that_key(
    redis_server: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    client = connect(redis_server.url)
    stream = _publish(client)
    keyring = Keyring.generate("k1")
    config = WorkerConfig(group="g", consumer="a", partitions=[0], read_count=1, block_ms=10)
    a = Worker(client, config, keyring=keyring)
    a.setup()
    _process(a, stream.first_half)
    a.checkpoint_all()

    caplog.set_level(logging.WARNING, logger=STATE_LOG)
    without = Worker(client, WorkerConfig(group="g", consumer="b", partitions=[0]), keyring=None)
    without.setup()
    assert (without.stats.states_restored, without.stats.states_ignored) == (0, 1)
    (warning,) = _state_warnings(caplog)
    assert "sealed with key id 'k1' and no data key is configured" in warning
    with_key = Worker(client, WorkerConfig(group="g", consumer="c", partitions=[0]), keyring=keyring)
    with_key.setup()
    assert with_key.stats.states_restored == 1


def test_oversized_state_is_not_saved_and_the_takeover_starts_cold(
    redis_server: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    client = connect(redis_server.url)
    stream = _checkpointed_first_half(client)  # with state
    caplog.set_level(logging.WARNING, logger=STATE_LOG)
    config = WorkerConfig(group="g", consumer="b", partitions=[0], read_count=1, block_ms=10, max_state_bytes=1000)
    b = Worker(client, config, keyring=None)
    b.setup()
    assert b.stats.states_restored == 1
    _process(b, 2)
    b.checkpoint_all()
    b.checkpoint_all()
    (warning,) = _state_warnings(caplog)
    assert "exceeds max_state_bytes (1000)" in warning
    stored = CheckpointStore(client, "g").load_with_state(0)
    assert stored.record is not None and stored.record.state_digest == "" and stored.blob is None  # old blob gone
    assert stored.record.last_id == client.xrange(LAYOUT.stream(0))[stream.first_half + 1][0].decode()

    c = _worker(client, "g", "c")
    c.setup()
    assert (c.stats.states_restored, c.stats.states_ignored) == (0, 0)  # nothing to restore, nothing to warn about


# -- alert rules' state ------------------------------------------------------------------------------------------

LOW_TRAFFIC = """
groups:
  - name: g
    rules:
      - alert: TrafficLow
        kind: threshold
        metric: events
        op: "<"
        value: 150
        for: 2m
"""
INCIDENT_MINUTES = range(3, 9)  # traffic thinned to a fifth: fires (2nd window) before the checkpoint, ends after


def _publish_incident(client: RedisClient) -> int:
    """The simulated stream with an incident; returns the number of entries of its first half (10 minutes)."""
    t0 = int(next(simulated_batches()).frame["ts"][0]) // 60_000 * 60_000
    minute = (pl.col("ts").cast(pl.Int64, strict=False) - t0) // 60_000
    thinned = minute.is_in(list(INCIDENT_MINUTES)).fill_null(False) & (pl.int_range(pl.len()) % 5 != 0)
    frames = [b.frame.filter(~thinned) for b in simulated_batches()]
    publisher = Publisher(client, 1, batch_size=200)
    first = publisher.publish(RawBatch(frame=f, source="first") for f in frames[:2]).entries
    publisher.publish(RawBatch(frame=f, source="second") for f in frames[2:])
    return first


def _alert_worker(client: RedisClient, consumer: str, rules: RuleSet, sent: list[Alert]) -> Worker:
    config = WorkerConfig(group="g", consumer=consumer, partitions=[0], read_count=1, block_ms=10, claim_idle_ms=1)
    return Worker(client, config, rules=rules, notify=sent.append, keyring=None)


def _checkpointed_after_the_alert(client: RedisClient, rules: RuleSet, sent: list[Alert]) -> Worker:
    """Worker "a" over the incident's first half (its alert fires), checkpointed at the end of it."""
    first_half = _publish_incident(client)
    a = _alert_worker(client, "a", rules, sent)
    a.setup()
    _process(a, first_half)
    a.checkpoint_all()
    return a


def test_replacement_resolves_the_alert_its_predecessor_had_firing(redis_server: RedisProcess) -> None:
    client = connect(redis_server.url)
    rules = parse_rules(LOW_TRAFFIC)
    a_sent: list[Alert] = []
    a = _checkpointed_after_the_alert(client, rules, a_sent)
    (firing,) = a_sent
    assert firing.status == "firing" and firing.labels["alertname"] == "TrafficLow"
    assert [x.labels["alertname"] for x in a.partitions[0].pipeline.engine.active()] == ["TrafficLow"]

    b_sent: list[Alert] = []
    b = _alert_worker(client, "b", rules, b_sent)
    b.setup()
    assert b.stats.states_restored == 1
    assert [x.starts_at for x in b.partitions[0].pipeline.engine.active()] == [firing.starts_at]
    _drain(b)
    (resolved,) = b_sent  # no second firing: b resolves a's alert, with a's startsAt
    assert (resolved.status, resolved.fingerprint, resolved.starts_at) == ("resolved", firing.fingerprint,
                                                                           firing.starts_at)  # fmt: skip
    assert resolved.ends_at == firing.starts_at + len(INCIDENT_MINUTES) * 60_000
    assert b.stats.alerts_notified == 1 and b.stats.alerts_deduplicated == 0


def _former_blob(blob: bytes, version: int) -> bytes:
    """``blob`` rewritten as the workers wrote it before the pipeline snapshot: a ``PartitionPipelineState`` of
    ``version`` (1: without alert state)."""
    state = StreamStateCodec("test").decode(blob)
    assert (state["component"], state["version"]) == ("PipelineSnapshot", 1)
    former = {"component": "PartitionPipelineState", "version": version, **state["position"],
              "detection": state["detection"], "stream": state["stream"]}  # fmt: skip
    if version == 2:
        former["alerts"] = state["alerts"]
    return StreamStateCodec("test").encode(former)


@pytest.mark.parametrize("version", [1, 2])
def test_a_former_partition_state_blob_is_adopted_once(redis_server: RedisProcess, version: int) -> None:
    """Blobs of the former format are read (version 1 has no alert state: the rules start cold); the next
    checkpoint writes the snapshot format."""
    client = connect(redis_server.url)
    rules = parse_rules(LOW_TRAFFIC)
    _checkpointed_after_the_alert(client, rules, [])
    store = CheckpointStore(client, "g")
    saved = store.load_with_state(0)
    assert saved.record is not None and saved.blob is not None
    store.save(saved.record, _former_blob(saved.blob, version))

    b = _alert_worker(client, "b", rules, [])
    b.setup()
    assert (b.stats.states_restored, b.stats.states_ignored) == (1, 0)
    pipeline = b.partitions[0].pipeline
    assert pipeline.detection.series_count > 0  # warm detectors
    assert len(pipeline.engine.active()) == (0 if version == 1 else 1)  # cold alert rules without alert state
    b.checkpoint_all()
    again = store.load_with_state(0).blob
    assert again is not None and StreamStateCodec("test").decode(again)["component"] == "PipelineSnapshot"


def test_alert_state_of_other_rules_is_skipped_with_one_warning(
    redis_server: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    client = connect(redis_server.url)
    a = _checkpointed_after_the_alert(client, parse_rules(LOW_TRAFFIC), [])
    assert a.partitions[0].pipeline.engine.active()

    caplog.set_level(logging.WARNING)
    other = parse_rules(LOW_TRAFFIC.replace("value: 150", "value: 120"))
    b = _alert_worker(client, "b", other, [])
    b.setup()
    assert (b.stats.states_restored, b.stats.states_ignored) == (1, 0)  # detectors and stream state restored
    pipeline = b.partitions[0].pipeline
    assert pipeline.detection.series_count > 0 and pipeline.engine.active() == []
    assert pipeline.engine.rules is other
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "alert state not restored, the alert rules start cold" in warnings[0]
    assert "rule definitions differ at #1 'TrafficLow'" in warnings[0]
