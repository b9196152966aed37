"""Redis key layout of distributed mode.

Every key that belongs to a partition carries the hash tag ``{p<i>}``, so the partition's stream, its
processed-entry markers, its accounting hash and its checkpoint (record and state blob) live in one Redis Cluster
slot: a Lua script or MULTI/EXEC can touch them together. Alert deduplication keys are global (no partition tag).

>>> k = KeyLayout("tw")
>>> k.stream(3)
'tw:{p3}:events'
>>> k.done(3, "g", "1700000000000-0")
'tw:{p3}:done:g:1700000000000-0'
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def check_name(what: str, value: str) -> str:
    """Return ``value`` if it is a safe key component (letters, digits, ``_.-``), else raise ``ValueError``."""
    if not _NAME.fullmatch(value):
        raise ValueError(f"{what}: {value!r} must be 1-64 characters of letters, digits, '_', '.' or '-'")
    return value


@dataclass(frozen=True, slots=True)
class KeyLayout:
    """Names of every Redis key used by publishers and workers, under one ``prefix``."""

    prefix: str = "tw"

    def __post_init__(self) -> None:
        check_name("prefix", self.prefix)

    def stream(self, partition: int) -> str:
        """The partition's event stream."""
        return f"{self.prefix}:{{p{partition}}}:events"

    def done(self, partition: int, group: str, entry_id: str) -> str:
        """Marker that ``entry_id`` has been processed and accounted by ``group`` (expires after a TTL)."""
        return f"{self.prefix}:{{p{partition}}}:done:{group}:{entry_id}"

    def accounting(self, partition: int, group: str) -> str:
        """Hash of event counters of the partition, updated atomically with each XACK."""
        return f"{self.prefix}:{{p{partition}}}:acct:{group}"

    def checkpoint(self, partition: int, group: str) -> str:
        """The partition's pipeline checkpoint record (counters, stream position, digest of the state blob)."""
        return f"{self.prefix}:{{p{partition}}}:ckpt:{group}"

    def checkpoint_state(self, partition: int, group: str) -> str:
        """The partition's pipeline state blob (detectors, event ids, watermark, open windows), beside its record."""
        return f"{self.prefix}:{{p{partition}}}:ckpt-state:{group}"

    def meta(self) -> str:
        """Hash with the stream layout written by the publisher (number of partitions)."""
        return f"{self.prefix}:streams:meta"

    def alert(self, fingerprint: str, starts_at: int, status: str) -> str:
        """Global deduplication key of one alert notification."""
        return f"{self.prefix}:alert:{fingerprint}:{starts_at}:{status}"
