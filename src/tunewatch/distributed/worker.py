"""A distributed worker: consume partitions of the event streams in a consumer group, one pipeline per partition.

Life of an entry: ``XREADGROUP`` (or ``XAUTOCLAIM`` from a dead consumer) → decode → ``Pipeline.ingest`` (alerts
go through the global :class:`AlertDeduplicator` before ``notify``) → :class:`EntryCommitter` marks it done,
adds its counts to the partition's accounting and XACKs it, atomically. A worker that dies between processing
and the commit leaves the entry pending; another worker claims it after ``claim_idle_ms`` and processes it again,
which is safe: the accounting counts it once and the alert keys suppress a second notification.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import ResponseError

from tunewatch.alert.model import Alert
from tunewatch.alert.rules import RuleSet, load_rules
from tunewatch.distributed.checkpoint import Checkpoint, CheckpointStore
from tunewatch.distributed.commit import DEFAULT_DONE_TTL_MS, EntryCommitter, EntryCounts
from tunewatch.distributed.connection import RedisClient
from tunewatch.distributed.dedup import DEFAULT_ALERT_TTL_MS, AlertDeduplicator
from tunewatch.distributed.drill import hold_before_ack
from tunewatch.distributed.entry import decode_entry
from tunewatch.distributed.keys import KeyLayout, check_name
from tunewatch.errors import InputError
from tunewatch.pipeline.core import Pipeline

log = logging.getLogger(__name__)

BAD_ENTRY_REASON = "entry: undecodable_payload"


def default_consumer() -> str:
    """A consumer name unique per process: ``<host>-<pid>``."""
    host = "".join(c if c.isalnum() or c in "_.-" else "-" for c in socket.gethostname())[:40] or "host"
    return f"{host}-{os.getpid()}"


@dataclass(slots=True)
class WorkerConfig:
    """How a worker consumes; ``partitions=None`` means every partition the publisher declared."""

    group: str = "tunewatch"
    consumer: str = field(default_factory=default_consumer)
    partitions: Sequence[int] | None = None
    read_count: int = 10  # entries per XREADGROUP / XAUTOCLAIM call
    block_ms: int = 1000  # longest wait for new entries
    claim_idle_ms: int = 30_000  # entries pending longer than this are taken from their consumer
    checkpoint_every: int = 50  # entries between checkpoints of a partition
    exit_when_idle_s: float | None = None  # stop after this long without entries (None: run until signalled)
    done_ttl_ms: int = DEFAULT_DONE_TTL_MS
    alert_ttl_ms: int = DEFAULT_ALERT_TTL_MS
    hold_before_ack_after: int | None = None  # fault drill: after this many entries, stop before the XACK
    notify_unscoped: bool = False  # notify alerts without a market label even when the data is partitioned

    def __post_init__(self) -> None:
        check_name("group", self.group)
        check_name("consumer", self.consumer)
        for name in ("read_count", "block_ms", "claim_idle_ms", "checkpoint_every"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: must be positive, got {getattr(self, name)}")


@dataclass(slots=True)
class WorkerStats:
    """What this worker did (its own view; the accounting hashes hold the group's exact totals)."""

    entries: int = 0
    events: int = 0
    reclaimed: int = 0
    redelivered: int = 0  # entries already accounted by another consumer (counted once, not twice)
    bad_entries: int = 0
    trimmed: int = 0  # pending entries trimmed from the stream before anyone processed them (lost)
    checkpoints: int = 0
    alerts_notified: int = 0
    alerts_deduplicated: int = 0
    alerts_partial: int = 0  # alerts of cross-market series computed on one partition only (not notified)

    def as_dict(self) -> dict[str, int]:
        """Plain dict (for the CLI summary)."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(slots=True)
class _Partition:
    index: int
    stream: str
    pipeline: Pipeline
    last_id: str = "0-0"
    since_checkpoint: int = 0


class Worker:
    """Consumes its partitions until stopped; see the module docstring for the processing contract."""

    def __init__(
        self,
        client: RedisClient,
        config: WorkerConfig | None = None,
        *,
        rules: RuleSet | None = None,
        notify: Callable[[Alert], None] | None = None,
        layout: KeyLayout | None = None,
    ) -> None:
        self.client = client
        self.config = config or WorkerConfig()
        self.layout = layout or KeyLayout()
        self.rules = rules or load_rules()
        self.notify = notify
        self.stats = WorkerStats()
        c = self.config
        self.committer = EntryCommitter(client, c.group, layout=self.layout, done_ttl_ms=c.done_ttl_ms,
                                        consumer=c.consumer)  # fmt: skip
        self.dedup = AlertDeduplicator(client, layout=self.layout, ttl_ms=c.alert_ttl_ms, owner=c.consumer)
        self.checkpoints = CheckpointStore(client, c.group, self.layout)
        self.partitions: dict[int, _Partition] = {}
        self._stopping = False
        self._last_claim = 0.0
        self._partial_view = False  # True when the stream is split in more than one partition

    # -- setup ---------------------------------------------------------------------------------------------------

    def assigned(self) -> list[int]:
        """The partitions this worker consumes (all declared ones when none were assigned)."""
        if self.config.partitions is not None:
            return sorted(set(self.config.partitions))
        declared = self.client.hget(self.layout.meta(), "partitions")
        if declared is None:
            raise InputError(f"{self.layout.meta()}: no partition count published yet; pass --partitions")
        return list(range(int(declared)))

    def setup(self) -> None:
        """Create the consumer group on each stream (MKSTREAM) and restore each partition's pipeline counters."""
        declared = self.client.hget(self.layout.meta(), "partitions")
        self._partial_view = declared is None or int(declared) > 1
        for p in self.assigned():
            if p < 0:
                raise ValueError(f"partitions: {p} is negative")
            stream = self.layout.stream(p)
            try:
                self.client.xgroup_create(stream, self.config.group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
            part = _Partition(p, stream, Pipeline(self.rules, on_alert=self._on_alert))
            self._restore(part)
            self.partitions[p] = part

    def _restore(self, part: _Partition) -> None:
        cp = self.checkpoints.load(part.index) or Checkpoint(part.index)
        totals = self.committer.totals(part.index)
        if totals.get("received", 0) > cp.received:  # the accounting hash is exact; a checkpoint may lag
            cp.received, cp.accepted = totals["received"], totals.get("accepted", 0)
            cp.rejected, cp.duplicates = totals.get("rejected", 0), totals.get("duplicates", 0)
            cp.reasons = {k.removeprefix("reason:"): v for k, v in totals.items() if k.startswith("reason:")}
        cp.restore_into(part.pipeline.counters)
        part.last_id = cp.last_id

    # -- main loop -----------------------------------------------------------------------------------------------

    def run(self) -> WorkerStats:
        """Process entries until SIGTERM/SIGINT (or ``exit_when_idle_s`` without work); checkpoint and return."""
        self.setup()
        self._install_signals()
        last_work = time.monotonic()
        self._recover_own_pending()
        while not self._stopping:
            done = self.reclaim_if_due() + self.poll()
            now = time.monotonic()
            if done:
                last_work = now
            elif self.config.exit_when_idle_s is not None and now - last_work >= self.config.exit_when_idle_s:
                break
        self.checkpoint_all()
        return self.stats

    def stop(self) -> None:
        """Ask :meth:`run` to return after the entry in progress."""
        self._stopping = True

    def _install_signals(self) -> None:
        def handler(_sig: int, _frame: Any) -> None:
            self.stop()

        try:
            signal.signal(signal.SIGTERM, handler)
            signal.signal(signal.SIGINT, handler)
        except ValueError:  # not the main thread: the caller stops the worker with stop()
            pass

    def _recover_own_pending(self) -> None:
        """Entries delivered to this consumer name before a restart (read with ID ``0``) are processed first."""
        for part in self.partitions.values():
            while True:
                reply = self.client.xreadgroup(self.config.group, self.config.consumer, {part.stream: "0"},
                                               count=self.config.read_count)  # fmt: skip
                entries = _entries_of(reply)
                if not entries:
                    break
                for entry_id, fields in entries:
                    self._process(part, entry_id, fields)

    def reclaim_if_due(self) -> int:
        """XAUTOCLAIM entries idle longer than ``claim_idle_ms`` (at start, then once per idle period)."""
        now = time.monotonic()
        if self._last_claim and now - self._last_claim < self.config.claim_idle_ms / 1000:
            return 0
        self._last_claim = now
        return self.reclaim()

    def reclaim(self) -> int:
        """Take over and process every entry pending longer than ``claim_idle_ms`` on this worker's partitions."""
        n = 0
        c = self.config
        for part in self.partitions.values():
            start = "0-0"
            while True:
                reply = self.client.xautoclaim(part.stream, c.group, c.consumer, c.claim_idle_ms, start_id=start,
                                               count=c.read_count)  # fmt: skip
                start = _text(reply[0])
                claimed = [(_text(i), f) for i, f in reply[1] if f is not None]
                if len(reply) > 2 and reply[2]:
                    self.stats.trimmed += len(reply[2])
                    log.warning("partition %d: %d pending entries were trimmed before processing", part.index,
                                len(reply[2]))  # fmt: skip
                for entry_id, fields in claimed:
                    self._process(part, entry_id, fields)
                n += len(claimed)
                if start == "0-0" or self._stopping:
                    break
        self.stats.reclaimed += n
        return n

    def poll(self) -> int:
        """Read and process new entries of every partition; blocks (``block_ms`` in all) only when all are empty."""
        n = 0
        c = self.config
        for part in self.partitions.values():
            entries = _entries_of(self.client.xreadgroup(c.group, c.consumer, {part.stream: ">"}, count=c.read_count))
            for entry_id, fields in entries:
                self._process(part, entry_id, fields)
            n += len(entries)
        if n == 0 and self.partitions and not self._stopping:
            wait = max(1, c.block_ms // len(self.partitions))
            for part in self.partitions.values():
                reply = self.client.xreadgroup(c.group, c.consumer, {part.stream: ">"}, count=c.read_count, block=wait)
                for entry_id, fields in _entries_of(reply):
                    self._process(part, entry_id, fields)
                    n += 1
                if n:
                    break
        return n

    # -- one entry -----------------------------------------------------------------------------------------------

    def _process(self, part: _Partition, entry_id: str, fields: dict[bytes, bytes]) -> None:
        counters = part.pipeline.counters
        try:
            batch = decode_entry(fields, entry_id)
        except InputError as exc:
            log.error("partition %d: %s", part.index, exc)
            n = _declared_count(fields)
            self.stats.bad_entries += 1
            counts = EntryCounts(n, 0, n, 0, {BAD_ENTRY_REASON: n})
            counters.received += n
            counters.rejected += n
            counters.reasons[BAD_ENTRY_REASON] += n
        else:
            v = part.pipeline.ingest(batch).validation
            counts = EntryCounts(v.received, v.accepted, v.rejected_count, v.duplicates, dict(v.reason_counts))
        self.stats.entries += 1
        hold = self.config.hold_before_ack_after
        if hold is not None and self.stats.entries == hold:
            hold_before_ack(self.client, self.layout, self.config.consumer, entry_id)
        if self.committer.commit(part.index, entry_id, counts):
            self.stats.events += counts.received
        else:  # another consumer accounted it already: undo our copy of the counts
            self.stats.redelivered += 1
            counters.received -= counts.received
            counters.accepted -= counts.accepted
            counters.rejected -= counts.rejected
            counters.duplicates -= counts.duplicates
            counters.reasons.subtract(counts.reasons)
            counters.reasons = +counters.reasons
        part.last_id = entry_id
        part.since_checkpoint += 1
        if part.since_checkpoint >= self.config.checkpoint_every:
            self.checkpoint(part)

    def _on_alert(self, alert: Alert) -> None:
        if self._partial_view and "market" not in alert.labels and not self.config.notify_unscoped:
            self.stats.alerts_partial += 1  # e.g. a global or per-CDN series seen through one partition's markets
            return
        if self.dedup.claim(alert):
            self.stats.alerts_notified += 1
            if self.notify is not None:
                self.notify(alert)
        else:
            self.stats.alerts_deduplicated += 1

    # -- checkpoints ---------------------------------------------------------------------------------------------

    def checkpoint(self, part: _Partition) -> None:
        """Write ``part``'s counters and stream position to Redis."""
        cp = Checkpoint.of(part.index, part.pipeline.counters, last_id=part.last_id,
                           consumer=self.config.consumer, saved_ms=int(time.time() * 1000))  # fmt: skip
        self.checkpoints.save(cp)
        part.since_checkpoint = 0
        self.stats.checkpoints += 1

    def checkpoint_all(self) -> None:
        """Checkpoint every partition (on stop)."""
        for part in self.partitions.values():
            self.checkpoint(part)


def _declared_count(fields: dict[bytes, bytes]) -> int:
    """The publisher's event count of an entry (``n``), 0 when absent or not a non-negative integer."""
    raw = fields.get(b"n", b"")
    return int(raw) if raw.isdigit() else 0


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _entries_of(reply: Any) -> list[tuple[str, dict[bytes, bytes]]]:
    """Entries of an XREADGROUP reply (RESP2: ``[[stream, [(id, fields), ...]], ...]``); deleted ones skipped."""
    out: list[tuple[str, dict[bytes, bytes]]] = []
    for _stream, entries in reply or []:
        out += [(_text(i), f) for i, f in entries if f]
    return out
