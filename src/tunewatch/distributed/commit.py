"""Exactly-once accounting: mark an entry processed, add its counts and XACK it in one atomic Lua script.

The script runs on the partition's slot (every key carries the ``{p<i>}`` hash tag). If the entry's ``done``
marker already exists, another consumer has accounted it (it was claimed from a stalled consumer and processed
twice): the script only acknowledges it and returns 0, so no event is counted twice. The marker expires after
``done_ttl_ms``, which must exceed the longest time an entry can stay pending.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tunewatch.distributed.connection import RedisClient, text_of
from tunewatch.distributed.keys import KeyLayout

_COMMIT = """
local first = redis.call('SET', KEYS[1], ARGV[4], 'NX', 'PX', ARGV[3])
if first then
  for i = 5, #ARGV, 2 do redis.call('HINCRBY', KEYS[3], ARGV[i], ARGV[i + 1]) end
end
redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
if first then return 1 end
return 0
"""

DEFAULT_DONE_TTL_MS = 7 * 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class EntryCounts:
    """Accounting of one processed entry (the pipeline counters' increase)."""

    received: int
    accepted: int
    rejected: int
    duplicates: int
    reasons: Mapping[str, int]

    def fields(self) -> list[str | int]:
        """Flat ``field, delta`` pairs for HINCRBY (zero deltas of reasons left out)."""
        out: list[str | int] = ["entries", 1, "received", self.received, "accepted", self.accepted,
                                "rejected", self.rejected, "duplicates", self.duplicates]  # fmt: skip
        for reason, n in self.reasons.items():
            if n:
                out += [f"reason:{reason}", n]
        return out


class EntryCommitter:
    """Runs the commit script for one consumer group."""

    def __init__(
        self,
        client: RedisClient,
        group: str,
        *,
        layout: KeyLayout | None = None,
        done_ttl_ms: int = DEFAULT_DONE_TTL_MS,
        consumer: str = "",
    ) -> None:
        if done_ttl_ms <= 0:
            raise ValueError(f"done_ttl_ms: must be positive, got {done_ttl_ms}")
        self.client = client
        self.group = group
        self.layout = layout or KeyLayout()
        self.done_ttl_ms = done_ttl_ms
        self.consumer = consumer
        self._script = client.register_script(_COMMIT)

    def commit(self, partition: int, entry_id: str, counts: EntryCounts) -> bool:
        """Account and acknowledge ``entry_id``; False when it had already been accounted (nothing added)."""
        lay = self.layout
        keys = [lay.done(partition, self.group, entry_id), lay.stream(partition), lay.accounting(partition, self.group)]
        args: list[str | int] = [self.group, entry_id, self.done_ttl_ms, self.consumer or "-", *counts.fields()]
        return int(self._script(keys=keys, args=args)) == 1

    def totals(self, partition: int) -> dict[str, int]:
        """The partition's accounting hash (``entries``, ``received``, …, ``reason:<field: reason>``)."""
        raw = self.client.hgetall(self.layout.accounting(partition, self.group))
        return {text_of(k): int(v) for k, v in raw.items()}
