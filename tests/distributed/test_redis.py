"""Publisher, exactly-once commit, checkpoints and global alert dedup against a real redis-server."""

from __future__ import annotations

import multiprocessing as mp
import signal
from multiprocessing.synchronize import Barrier

import pytest

from tests.cache.servers import RedisProcess
from tests.distributed.helpers import simulated_batches
from tunewatch.alert.model import Alert
from tunewatch.distributed import AlertDeduplicator, EntryCommitter, EntryCounts, Publisher, Worker, WorkerConfig
from tunewatch.distributed.checkpoint import Checkpoint, CheckpointStore
from tunewatch.distributed.connection import connect
from tunewatch.distributed.keys import KeyLayout
from tunewatch.errors import InputError
from tunewatch.pipeline.core import PipelineCounters

pytestmark = pytest.mark.integration


def test_publisher_partitions_by_market_in_bounded_entries(redis_server: RedisProcess) -> None:
    client = connect(redis_server.url)
    stats = Publisher(client, 3, batch_size=250, pipeline_entries=4).publish(simulated_batches())
    lengths = {p: client.xlen(KeyLayout().stream(p)) for p in range(3)}
    assert sum(lengths.values()) == stats.entries and all(n > 0 for n in lengths.values())
    assert sum(stats.per_partition.values()) == stats.events > 6000
    assert client.hget(KeyLayout().meta(), "partitions") == b"3"
    sizes = [int(fields[b"n"]) for _id, fields in client.xrange(KeyLayout().stream(0))]
    assert max(sizes) <= 250 and sum(sizes) == stats.per_partition[0]


def test_an_entry_committed_twice_is_accounted_once(redis_server: RedisProcess) -> None:
    client = connect(redis_server.url)
    stream = KeyLayout().stream(0)
    client.xgroup_create(stream, "g", id="0", mkstream=True)
    entry_id = client.xadd(stream, {"d": b"x"}).decode()
    client.xreadgroup("g", "a", {stream: ">"})
    assert client.xpending(stream, "g")["pending"] == 1
    counts = EntryCounts(10, 7, 2, 1, {"market: not_in_enum": 2})
    first, second = EntryCommitter(client, "g", consumer="a"), EntryCommitter(client, "g", consumer="b")
    assert first.commit(0, entry_id, counts) is True
    assert second.commit(0, entry_id, counts) is False  # e.g. claimed from a stalled consumer, processed again
    assert first.totals(0) == {"entries": 1, "received": 10, "accepted": 7, "rejected": 2, "duplicates": 1,
                               "reason:market: not_in_enum": 2}  # fmt: skip
    assert client.xpending(stream, "g")["pending"] == 0
    assert 0 < client.pttl(KeyLayout().done(0, "g", entry_id)) <= first.done_ttl_ms


def test_checkpoint_round_trip_and_worker_restores_counters(redis_server: RedisProcess) -> None:
    client = connect(redis_server.url)
    store = CheckpointStore(client, "g")
    assert store.load(0) is None
    counters = PipelineCounters(received=10, accepted=8, rejected=1, duplicates=1)
    counters.reasons["ts: future"] = 1
    store.save(Checkpoint.of(0, counters, last_id="5-0", consumer="a", saved_ms=1))
    cp = store.load(0)
    assert cp is not None and cp.last_id == "5-0" and cp.reasons == {"ts: future": 1}

    worker = Worker(client, WorkerConfig(group="g", consumer="b", partitions=[0]))
    worker.setup()
    restored = worker.partitions[0].pipeline.counters
    assert (restored.received, restored.accepted, restored.rejected, restored.duplicates) == (10, 8, 1, 1)
    assert worker.partitions[0].last_id == "5-0" and restored.balanced


def _alert(i: int) -> Alert:
    return Alert(labels={"alertname": "HighFailureRate", "market": "BR", "n": str(i)}, annotations={},
                 status="firing", starts_at=1_767_571_200_000)  # fmt: skip


def _race(url: str, barrier: Barrier, n_alerts: int, results: mp.Queue[list[int]]) -> None:
    dedup = AlertDeduplicator(connect(url), ttl_ms=60_000)
    barrier.wait()
    results.put([i for i in range(n_alerts) if dedup.claim(_alert(i))])


def test_workers_racing_on_the_same_alerts_notify_each_once(redis_server: RedisProcess) -> None:
    ctx = mp.get_context("fork")  # the children only talk to Redis (no Polars), so fork is safe and fast
    n_procs, n_alerts = 4, 200
    barrier, results = ctx.Barrier(n_procs), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(redis_server.url, barrier, n_alerts, results)) for _ in range(n_procs)]
    for p in procs:
        p.start()
    won = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    winners = sorted(i for w in won for i in w)
    assert winners == list(range(n_alerts))  # every alert notified exactly once across the racing processes

    dedup = AlertDeduplicator(connect(redis_server.url))
    resolved = _alert(0)
    resolved.status = "resolved"
    assert dedup.claim(_alert(0)) is False and dedup.claim(resolved) is True
    assert (dedup.stats.notified, dedup.stats.deduplicated) == (1, 1)


def test_worker_counts_a_foreign_entry_as_rejected_and_acks_it(redis_server: RedisProcess) -> None:
    client = connect(redis_server.url)
    Publisher(client, 1, batch_size=2000).publish(simulated_batches())
    client.xadd(KeyLayout().stream(0), {"d": b"\x09not ours", "n": b"3"})
    worker = Worker(client, WorkerConfig(group="g", consumer="w", partitions=[0], block_ms=10, read_count=100))
    worker.setup()
    assert worker.reclaim() == 0
    processed = worker.poll()
    assert processed == client.xlen(KeyLayout().stream(0)) and worker.stats.bad_entries == 1
    totals = EntryCommitter(client, "g").totals(0)
    assert totals["reason:entry: undecodable_payload"] == 3
    assert totals["received"] == totals["accepted"] + totals["rejected"] + totals["duplicates"]
    counters = worker.partitions[0].pipeline.counters
    assert counters.received == totals["received"] and counters.balanced
    worker.checkpoint_all()
    assert CheckpointStore(client, "g").load(0) is not None


def test_workers_notify_market_alerts_once_and_hold_back_partial_cross_market_ones(redis_server: RedisProcess) -> None:
    client = connect(redis_server.url)
    client.hset(KeyLayout().meta(), "partitions", 2)
    sent: list[Alert] = []
    workers = [Worker(client, WorkerConfig(group="g", consumer=f"w{i}", partitions=[i]), notify=sent.append)
               for i in range(2)]  # fmt: skip
    for w in workers:
        w.setup()
    market_alert = _alert(1)
    global_alert = Alert(labels={"alertname": "PlaysDrop", "metric": "plays"}, annotations={}, status="firing",
                         starts_at=1_767_571_200_000)  # fmt: skip
    for i, w in enumerate(workers):  # e.g. the replacement of a failed worker re-derives the same alert change
        on_alert = w.partitions[i].pipeline.on_alert
        assert on_alert is not None
        on_alert(market_alert)
        on_alert(global_alert)
    assert sent == [market_alert]
    assert [(w.stats.alerts_notified, w.stats.alerts_deduplicated, w.stats.alerts_partial) for w in workers] == [
        (1, 0, 1), (0, 1, 1)]  # fmt: skip


def test_publisher_refuses_another_partition_count_for_the_same_prefix(redis_server: RedisProcess) -> None:
    client = connect(redis_server.url)
    Publisher(client, 2).publish([])
    with pytest.raises(InputError, match=r"partitions: the streams under prefix 'tw' have 2 partitions, not 3"):
        Publisher(client, 3).publish([])
    assert Publisher(client, 3, layout=KeyLayout("other")).publish([]).events == 0


def test_restarted_consumer_processes_its_own_pending_entries_first(redis_server: RedisProcess) -> None:
    client = connect(redis_server.url)
    stats = Publisher(client, 1, batch_size=1000).publish(simulated_batches())
    stream = KeyLayout().stream(0)
    client.xgroup_create(stream, "g", id="0")
    client.xreadgroup("g", "w", {stream: ">"}, count=3)  # delivered to "w", which then "crashed"
    config = WorkerConfig(group="g", consumer="w", partitions=[0], block_ms=20, exit_when_idle_s=0.1)
    handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        result = Worker(client, config).run()
    finally:
        signal.signal(signal.SIGTERM, handlers[0])
        signal.signal(signal.SIGINT, handlers[1])
    assert result.entries == stats.entries and result.events == stats.events and result.reclaimed == 0
    assert client.xpending(stream, "g")["pending"] == 0
    assert EntryCommitter(client, "g").totals(0)["received"] == stats.events
