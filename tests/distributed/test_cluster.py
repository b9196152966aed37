"""Publish and workers against a real 6-node Redis Cluster: partition streams spread over slots and masters, and a
takeover restores each partition's checkpointed pipeline state (record and blob in the partition's slot)."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from tests.cache.servers import RedisClusterProcesses
from tests.distributed.helpers import group_totals, simulated_batches, start_worker, summary_of
from tunewatch.distributed import EntryCommitter, Publisher, Worker, WorkerConfig
from tunewatch.distributed.checkpoint import CheckpointStore
from tunewatch.distributed.connection import connect
from tunewatch.distributed.keys import KeyLayout

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_publish_and_worker_across_cluster_slots(redis_cluster: RedisClusterProcesses) -> None:
    client = connect(cluster_nodes=redis_cluster.addresses)
    n = 6
    stats = Publisher(client, n, batch_size=300).publish(simulated_batches())
    slots = {key_slot(KeyLayout().stream(p).encode()) for p in range(n)}
    assert len(slots) == n
    holders = [m for m in redis_cluster.masters() if any(k.startswith(b"tw:{p") for k in m.client().keys("tw:*"))]
    assert len(holders) >= 2  # the partitions live on several masters

    nodes = [arg for addr in redis_cluster.addresses for arg in ("--cluster-node", addr)]
    worker = start_worker(nodes, "--consumer", "w1", "--exit-when-idle", "1.5", "--block", "100")
    summary = summary_of(worker)
    assert summary["partitions"] == list(range(n)) and summary["events"] == stats.events

    totals = group_totals(client, "tunewatch", range(n))
    for p, t in totals.items():
        assert t.get("received", 0) == stats.per_partition.get(p, 0)
        assert t.get("received", 0) == t.get("accepted", 0) + t.get("rejected", 0) + t.get("duplicates", 0)
        assert client.xpending(KeyLayout().stream(p), "tunewatch")["pending"] == 0
    assert sum(t.get("entries", 0) for t in totals.values()) == stats.entries
    assert all(client.get(KeyLayout().checkpoint(p, "tunewatch")) is not None for p in range(n))


def test_takeover_restores_partition_state_on_a_cluster(redis_cluster: RedisClusterProcesses) -> None:
    client = connect(cluster_nodes=redis_cluster.addresses)
    stats = Publisher(client, 2, batch_size=300).publish(simulated_batches())
    layout = KeyLayout()
    for p in range(2):  # record, state blob, stream and accounting of a partition share its slot
        keys = [layout.checkpoint(p, "g"), layout.checkpoint_state(p, "g"), layout.stream(p), layout.accounting(p, "g")]
        assert len({key_slot(k.encode()) for k in keys}) == 1

    def config(consumer: str) -> WorkerConfig:
        return WorkerConfig(group="g", consumer=consumer, partitions=[0, 1], read_count=1, block_ms=10)

    a = Worker(client, config("a"), keyring=None)
    a.setup()
    for _ in range(4):
        a.poll()
    a.checkpoint_all()
    assert all(CheckpointStore(client, "g").load_with_state(p).state_problem() is None for p in range(2))

    b = Worker(client, config("b"), keyring=None)
    b.setup()
    assert (b.stats.states_restored, b.stats.states_ignored) == (2, 0)
    while b.poll():
        pass
    totals = {p: EntryCommitter(client, "g").totals(p) for p in range(2)}
    assert sum(t["entries"] for t in totals.values()) == stats.entries
    assert all(t["received"] == stats.per_partition[p] for p, t in totals.items())
