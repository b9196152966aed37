"""Publisher: split raw batches by partition and XADD them in entries of ``batch_size`` events, pipelined.

Each partition is one stream (``tw:{p<i>}:events``); entries are trimmed with ``MAXLEN ~`` so a stream stays
bounded. Trimming drops the oldest entries even when no worker has read them: size ``maxlen`` well above the
backlog a consumer group may accumulate.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, cast

from tunewatch.distributed.connection import RedisClient
from tunewatch.distributed.entry import DEFAULT_COMPRESS_THRESHOLD, encode_entry
from tunewatch.distributed.keys import KeyLayout
from tunewatch.distributed.partition import partitions
from tunewatch.errors import InputError
from tunewatch.ingest.batch import RawBatch


@dataclass(slots=True)
class PublishStats:
    """What a publish run sent."""

    events: int = 0
    entries: int = 0
    payload_bytes: int = 0
    per_partition: dict[int, int] = field(default_factory=dict)  # events per partition
    seconds: float = 0.0

    @property
    def events_per_s(self) -> float:
        """Publishing throughput."""
        return self.events / self.seconds if self.seconds > 0 else 0.0


class Publisher:
    """XADDs raw batches to ``n_partitions`` streams, partitioned by market.

    Undecodable lines (no market known) go to partition 0 in their own entry, so they are still counted as
    received (and rejected) by a worker.
    """

    def __init__(
        self,
        client: RedisClient,
        n_partitions: int,
        *,
        layout: KeyLayout | None = None,
        batch_size: int = 5000,
        maxlen: int = 1_000_000,
        pipeline_entries: int = 64,
        compress_threshold: int = DEFAULT_COMPRESS_THRESHOLD,
    ) -> None:
        if n_partitions <= 0:
            raise ValueError(f"partitions: must be positive, got {n_partitions}")
        if batch_size <= 0:
            raise ValueError(f"batch_size: must be positive, got {batch_size}")
        self.client = client
        self.n_partitions = n_partitions
        self.layout = layout or KeyLayout()
        self.batch_size = batch_size
        self.maxlen = maxlen
        self.pipeline_entries = max(1, pipeline_entries)
        self.compress_threshold = compress_threshold
        self.stats = PublishStats()
        self._pending: list[tuple[int, dict[str, bytes], int]] = []

    def publish(self, batches: Iterable[RawBatch]) -> PublishStats:
        """Publish every batch, then flush; returns the accumulated :class:`PublishStats`."""
        t0 = time.perf_counter()
        self._declare_partitions()
        for batch in batches:
            self.add(batch)
        self.flush()
        self.stats.seconds += time.perf_counter() - t0
        return self.stats

    def _declare_partitions(self) -> None:
        """Record N in the layout's meta hash; refuse another N (it would move markets between partitions)."""
        meta = self.layout.meta()
        self.client.hsetnx(meta, "partitions", self.n_partitions)
        declared = int(self.client.hget(meta, "partitions") or 0)
        if declared != self.n_partitions:
            raise InputError(
                f"partitions: the streams under prefix {self.layout.prefix!r} have {declared} partitions, not "
                f"{self.n_partitions}; publish with --partitions {declared} or use another --prefix"
            )

    def add(self, batch: RawBatch) -> None:
        """Queue ``batch`` (split by partition and size); sends a pipeline whenever enough entries are queued."""
        frame = batch.frame
        if frame.height:
            parts = partitions(frame, self.n_partitions)
            tagged = frame.with_columns(parts)
            for (p,), group in tagged.group_by("partition", maintain_order=True):
                rows = group.drop("partition")
                for start in range(0, rows.height, self.batch_size):
                    chunk = RawBatch(frame=rows.slice(start, self.batch_size), source=batch.source)
                    self._queue(int(p), chunk)
        if batch.undecodable:
            self._queue(0, RawBatch(frame=frame.clear(), source=batch.source, undecodable=batch.undecodable))

    def _queue(self, partition: int, chunk: RawBatch) -> None:
        self._pending.append((partition, encode_entry(chunk, self.compress_threshold), chunk.received))
        if len(self._pending) >= self.pipeline_entries:
            self.flush()

    def flush(self) -> None:
        """Send the queued entries in one pipeline (one round trip per node)."""
        if not self._pending:
            return
        pipe = self.client.pipeline(transaction=False)
        for partition, fields, _ in self._pending:
            entry = cast("dict[Any, Any]", fields)  # redis-py's own hints want a wider (invariant) dict type
            pipe.xadd(self.layout.stream(partition), entry, maxlen=self.maxlen, approximate=True)
        pipe.execute()
        for partition, fields, received in self._pending:
            self.stats.events += received
            self.stats.entries += 1
            self.stats.payload_bytes += len(fields["d"])
            self.stats.per_partition[partition] = self.stats.per_partition.get(partition, 0) + received
        self._pending.clear()
