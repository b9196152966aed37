"""Distributed mode: publishers XADD event batches to partition streams; workers consume them in a group.

Modules: ``keys`` (Redis key layout, hash-tagged per partition), ``connection`` (Redis / Redis Cluster client),
``entry`` (stream-entry codec), ``partition`` (market → partition), ``producer`` (publisher), ``commit``
(exactly-once accounting with XACK), ``dedup`` (global alert deduplication), ``checkpoint`` (checkpoint record
and state blob — a pipeline snapshot, :mod:`tunewatch.pipeline.snapshot` — written and read atomically),
``catchup`` (entries accounted after a checkpoint, replayed on takeover), ``drill`` (fault drill), ``worker`` (the
consumer loop). See ``docs/distributed.md``.
"""

from tunewatch.distributed.commit import EntryCommitter, EntryCounts
from tunewatch.distributed.connection import connect
from tunewatch.distributed.dedup import AlertDeduplicator
from tunewatch.distributed.keys import KeyLayout
from tunewatch.distributed.producer import Publisher, PublishStats
from tunewatch.distributed.worker import Worker, WorkerConfig, WorkerStats

__all__ = [
    "AlertDeduplicator",
    "EntryCommitter",
    "EntryCounts",
    "KeyLayout",
    "PublishStats",
    "Publisher",
    "Worker",
    "WorkerConfig",
    "WorkerStats",
    "connect",
]
