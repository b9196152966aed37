"""Checkpoints of a partition's pipeline in Redis: a small record and, beside it, the pipeline's state blob.

The **record** (``<prefix>:{p<i>}:ckpt:<group>``, msgpack) holds the counters, the last acknowledged entry id, the
consumer, the time, and the BLAKE2b digest and size of the **state blob** (``<prefix>:{p<i>}:ckpt-state:<group>``:
the partition pipeline's snapshot, see :mod:`tunewatch.pipeline.snapshot`). Both keys carry the partition's
hash tag, so one Lua script writes them together (also on a Redis Cluster) and another reads them together; a
reader still checks the blob against the record's digest, so a blob of another moment (left by an older worker
version, restored from a backup, written by hand) is never taken for this record's.

A worker writes a checkpoint every ``checkpoint_every`` entries and when it stops, and restores it when it (or a
replacement) takes the partition over. The authoritative, exactly-once accounting is the partition's accounting
hash (see :mod:`tunewatch.distributed.commit`); the record may lag it by up to ``checkpoint_every`` entries.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import msgpack

from tunewatch.distributed.connection import RedisClient
from tunewatch.distributed.keys import KeyLayout
from tunewatch.pipeline.core import PipelineCounters

VERSION = 1

# KEYS: record, blob. ARGV: record bytes, blob bytes ('' = no blob: delete it), TTL in ms ('0' = none).
_SAVE = """
local ttl = tonumber(ARGV[3])
local function put(key, value)
  if ttl > 0 then redis.call('SET', key, value, 'PX', ttl) else redis.call('SET', key, value) end
end
put(KEYS[1], ARGV[1])
if ARGV[2] == '' then redis.call('DEL', KEYS[2]) else put(KEYS[2], ARGV[2]) end
return 1
"""

# KEYS: record, blob. Both values of one moment (a missing key reads as nil).
_LOAD = """
return {redis.call('GET', KEYS[1]), redis.call('GET', KEYS[2])}
"""


def state_digest(blob: bytes) -> str:
    """The digest a checkpoint record keeps of its state blob (BLAKE2b-128, hex)."""
    return hashlib.blake2b(blob, digest_size=16).hexdigest()


@dataclass(slots=True)
class Checkpoint:
    """State of one partition's pipeline at ``last_id`` (the newest acknowledged entry).

    ``state_digest`` and ``state_bytes`` describe the state blob saved with this record ("" and 0: none).
    """

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
    state_digest: str = ""
    state_bytes: int = 0

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


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    """A record and the state blob read with it in one step (either may be missing)."""

    record: Checkpoint | None
    blob: bytes | None

    def state_problem(self) -> str | None:
        """Why the blob cannot serve as the record's state (None: it can, or there is nothing to restore)."""
        if self.record is None or not self.record.state_digest:
            return None if self.blob is None else "the checkpoint record does not refer to a state blob"
        if self.blob is None:
            return "the checkpoint record refers to a state blob that is missing (expired or deleted)"
        if state_digest(self.blob) != self.record.state_digest:
            return "the state blob does not match the checkpoint record's digest (damaged, or of another moment)"
        return None


class CheckpointStore:
    """Reads and writes partition checkpoints (record and state blob) for one consumer group.

    ``ttl_ms`` (None: no expiry, the default) applies to the record and the blob alike.
    """

    def __init__(
        self, client: RedisClient, group: str, layout: KeyLayout | None = None, *, ttl_ms: int | None = None
    ) -> None:
        if ttl_ms is not None and ttl_ms <= 0:
            raise ValueError(f"checkpoint ttl_ms: must be positive or None, got {ttl_ms}")
        self.client = client
        self.group = group
        self.layout = layout or KeyLayout()
        self.ttl_ms = ttl_ms
        self._save = client.register_script(_SAVE)
        self._load = client.register_script(_LOAD)

    def keys(self, partition: int) -> list[str]:
        """The record's and the blob's key."""
        return [self.layout.checkpoint(partition, self.group), self.layout.checkpoint_state(partition, self.group)]

    def save(self, cp: Checkpoint, blob: bytes | None = None) -> None:
        """Write ``cp`` and its state ``blob`` in one atomic step (no blob: the partition's old blob is deleted).

        Sets ``cp.state_digest`` and ``cp.state_bytes`` from ``blob``.
        """
        cp.state_digest, cp.state_bytes = (state_digest(blob), len(blob)) if blob else ("", 0)
        body = msgpack.packb({"v": VERSION, **{k: getattr(cp, k) for k in Checkpoint.__dataclass_fields__}})
        self._save(keys=self.keys(cp.partition), args=[body, blob or b"", self.ttl_ms or 0])

    def load(self, partition: int) -> Checkpoint | None:
        """The partition's checkpoint record, or None if there is none (or it has another version)."""
        return _record(self.client.get(self.layout.checkpoint(partition, self.group)))

    def load_with_state(self, partition: int) -> StoredCheckpoint:
        """The partition's record and state blob, read together (check :meth:`StoredCheckpoint.state_problem`)."""
        raw, blob = self._load(keys=self.keys(partition))
        return StoredCheckpoint(_record(raw), blob)


def _record(raw: bytes | str | None) -> Checkpoint | None:
    if not isinstance(raw, bytes):
        return None
    try:
        data = msgpack.unpackb(raw, raw=False)
    except (ValueError, msgpack.UnpackException):
        return None
    if not isinstance(data, dict) or data.pop("v", None) != VERSION:
        return None
    try:
        return Checkpoint(**{k: v for k, v in data.items() if k in Checkpoint.__dataclass_fields__})
    except TypeError:
        return None
