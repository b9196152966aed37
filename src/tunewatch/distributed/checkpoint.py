"""Checkpoints of a partition's pipeline in Redis: counters and stream position, msgpack-encoded.

A worker writes one every ``checkpoint_every`` entries and when it stops, and restores it when it (or a
replacement) takes the partition over, so the pipeline's running totals continue. The authoritative,
exactly-once accounting is the partition's accounting hash (see :mod:`tunewatch.distributed.commit`); the
checkpoint may lag it by up to ``checkpoint_every`` entries. Detector state will be added under
``detectors`` from the detectors' ``state_dict()``; today a restored pipeline starts its detectors cold.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import msgpack

from tunewatch.distributed.connection import RedisClient
from tunewatch.distributed.keys import KeyLayout
from tunewatch.pipeline.core import PipelineCounters

VERSION = 1


@dataclass(slots=True)
class Checkpoint:
    """State of one partition's pipeline at ``last_id`` (the newest acknowledged entry)."""

    partition: int
    last_id: str = "0-0"
    entries: int = 0
    received: int = 0
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    consumer: str = ""
    saved_ms: int = 0

    @classmethod
    def of(cls, partition: int, counters: PipelineCounters, **extra: Any) -> Checkpoint:
        """Snapshot of ``counters``."""
        return cls(partition=partition, received=counters.received, accepted=counters.accepted,
                   rejected=counters.rejected, duplicates=counters.duplicates, reasons=dict(counters.reasons),
                   **extra)  # fmt: skip

    def restore_into(self, counters: PipelineCounters) -> None:
        """Set ``counters`` to this checkpoint's totals."""
        counters.received, counters.accepted = self.received, self.accepted
        counters.rejected, counters.duplicates = self.rejected, self.duplicates
        counters.reasons = Counter(self.reasons)


class CheckpointStore:
    """Reads and writes partition checkpoints for one consumer group."""

    def __init__(self, client: RedisClient, group: str, layout: KeyLayout | None = None) -> None:
        self.client = client
        self.group = group
        self.layout = layout or KeyLayout()

    def save(self, cp: Checkpoint) -> None:
        """Write ``cp`` (no TTL: it lives as long as the consumer group)."""
        body = msgpack.packb({"v": VERSION, **{k: getattr(cp, k) for k in Checkpoint.__dataclass_fields__}})
        self.client.set(self.layout.checkpoint(cp.partition, self.group), body)

    def load(self, partition: int) -> Checkpoint | None:
        """The partition's checkpoint, or None if there is none (or it has another version)."""
        raw = self.client.get(self.layout.checkpoint(partition, self.group))
        if raw is None:
            return None
        data = msgpack.unpackb(raw, raw=False)
        if not isinstance(data, dict) or data.pop("v", None) != VERSION:
            return None
        return Checkpoint(**{k: v for k, v in data.items() if k in Checkpoint.__dataclass_fields__})
