"""A distributed worker: consume partitions of the event streams in a consumer group, one pipeline per partition.

Life of an entry: ``XREADGROUP`` (or ``XAUTOCLAIM`` from a dead consumer) → decode → ``Pipeline.ingest`` (alerts
go through the global :class:`AlertDeduplicator` before ``notify``) → :class:`EntryCommitter` marks it done,
adds its counts to the partition's accounting and XACKs it, atomically. A worker that dies between processing
and the commit leaves the entry pending; another worker claims it after ``claim_idle_ms`` and processes it again,
which is safe: the accounting counts it once and the alert keys suppress a second notification.

Takeover: every ``checkpoint_every`` entries (after an entry's commit, before the next entry) and on stop, the
worker saves the partition's counters, last acknowledged id and pipeline state (detectors, remembered event ids,
watermark, open windows, alert rules' state: a pipeline snapshot, :mod:`tunewatch.pipeline.snapshot`, the same
format as ``tunewatch serve``'s) in one atomic step. A worker that starts
on the partition (and again before its first entry there, if the checkpoint has become newer meanwhile)
restores that state when it matches the record (else it starts cold, with one warning), then replays the entries
accounted after the checkpoint (:mod:`tunewatch.distributed.catchup`) without counting or notifying them again,
so its pipeline is where the previous one was when it acknowledged its last entry.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

import polars as pl
from redis.exceptions import ResponseError

from tunewatch.alert.model import Alert
from tunewatch.alert.rules import RuleSet, load_rules
from tunewatch.distributed.catchup import AccountedEntries
from tunewatch.distributed.checkpoint import Checkpoint, CheckpointStore, StoredCheckpoint
from tunewatch.distributed.commit import DEFAULT_DONE_TTL_MS, EntryCommitter, EntryCounts
from tunewatch.distributed.connection import RedisClient
from tunewatch.distributed.dedup import DEFAULT_ALERT_TTL_MS, AlertDeduplicator
from tunewatch.distributed.drill import hold_before_ack
from tunewatch.distributed.entry import decode_entry
from tunewatch.distributed.keys import KeyLayout, check_name
from tunewatch.errors import InputError
from tunewatch.pipeline.core import Pipeline, PipelineCounters
from tunewatch.pipeline.snapshot import SnapshotCodec, SnapshotError, restore
from tunewatch.process.processor import ProcessingResult
from tunewatch.quarantine.crypto import configured_keyring
from tunewatch.security.keyring import Keyring

log = logging.getLogger(__name__)

BAD_ENTRY_REASON = "entry: undecodable_payload"
#: largest state blob a checkpoint stores (Redis refuses values above 512 MB; big values stall the server)
DEFAULT_MAX_STATE_BYTES = 128 * 1024 * 1024

#: receives a partition's closed windows: partition index, their metrics, their detections
MetricsCallback = Callable[[int, ProcessingResult, pl.DataFrame], None]


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
    checkpoint_state: bool = True  # save the pipeline state with each checkpoint and restore it on takeover
    checkpoint_ttl_ms: int | None = None  # expiry of checkpoint record and state blob (None: they stay)
    max_state_bytes: int = DEFAULT_MAX_STATE_BYTES  # a larger state blob is not saved (takeover starts cold)
    exit_when_idle_s: float | None = None  # stop after this long without entries (None: run until signalled)
    done_ttl_ms: int = DEFAULT_DONE_TTL_MS
    alert_ttl_ms: int = DEFAULT_ALERT_TTL_MS
    hold_before_ack_after: int | None = None  # fault drill: after this many entries, stop before the XACK
    notify_unscoped: bool = False  # notify alerts without a market label even when the data is partitioned

    def __post_init__(self) -> None:
        check_name("group", self.group)
        check_name("consumer", self.consumer)
        for name in ("read_count", "block_ms", "claim_idle_ms", "checkpoint_every", "max_state_bytes"):
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
    state_bytes: int = 0  # size of the largest state blob saved
    states_restored: int = 0  # partitions whose pipeline state was restored from a checkpoint
    states_ignored: int = 0  # unusable state blobs (damaged, foreign, other moment): those partitions started cold
    replayed: int = 0  # entries accounted after the restored checkpoint, replayed into the pipeline only
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
    fresh: bool = True  # no entry processed since the pipeline was (re)started or restored
    ignored_state: str = ""  # the record's state digest when its blob was found unusable (warned about once)
    state_unsaved: bool = False  # the last checkpoint could not hold the state (reported once until it can)


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
        on_metrics: MetricsCallback | None = None,
        keyring: Keyring | Literal["env"] | None = "env",
    ) -> None:
        """``on_metrics`` receives every window a partition's pipeline closes (not those re-closed by a replay
        after a takeover: the previous worker delivered them); ``keyring`` seals the user-id hashes in state
        blobs (default ``"env"``: the data keyring of ``TUNEWATCH_DATA_KEY``/``_FILE``, none when unset)."""
        self.client = client
        self.config = config or WorkerConfig()
        self.layout = layout or KeyLayout()
        self.rules = rules or load_rules()
        self.notify = notify
        self.on_metrics = on_metrics
        self.stats = WorkerStats()
        c = self.config
        self.committer = EntryCommitter(client, c.group, layout=self.layout, done_ttl_ms=c.done_ttl_ms,
                                        consumer=c.consumer)  # fmt: skip
        self.dedup = AlertDeduplicator(client, layout=self.layout, ttl_ms=c.alert_ttl_ms, owner=c.consumer)
        self.checkpoints = CheckpointStore(client, c.group, self.layout, ttl_ms=c.checkpoint_ttl_ms)
        self.state_codec = SnapshotCodec(configured_keyring() if isinstance(keyring, str) else keyring)
        self.accounted = AccountedEntries(client, c.group, self.layout, page=c.read_count)
        self.partitions: dict[int, _Partition] = {}
        self._stopping = False
        self._replaying = False  # replaying accounted entries: no counting, notifying or metrics delivery
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
        """Create the consumer group on each stream (MKSTREAM) and restore each partition's pipeline (counters,
        and state when the checkpoint has a usable one, followed by a replay of the entries accounted since)."""
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
            part = _Partition(p, stream, self._new_pipeline(p))
            self._restore(part)
            self.partitions[p] = part

    def _new_pipeline(self, index: int) -> Pipeline:
        on_metrics = None if self.on_metrics is None else partial(self._deliver_metrics, index)
        return Pipeline(self.rules, on_alert=self._on_alert, on_metrics=on_metrics)

    def _restore(self, part: _Partition) -> None:
        """Give ``part`` a pipeline as of its checkpoint: counters, state if usable, then the catch-up replay."""
        stored = self.checkpoints.load_with_state(part.index)
        cp = stored.record or Checkpoint(part.index)
        part.pipeline = self._new_pipeline(part.index)
        warm = self._load_state(part, stored)
        totals = self.committer.totals(part.index)
        if totals.get("received", 0) > cp.received:  # the accounting hash is exact; a checkpoint may lag
            cp.received, cp.accepted = totals["received"], totals.get("accepted", 0)
            cp.rejected, cp.duplicates = totals.get("rejected", 0), totals.get("duplicates", 0)
            cp.reasons = {k.removeprefix("reason:"): v for k, v in totals.items() if k.startswith("reason:")}
        cp.restore_into(part.pipeline.counters)
        part.last_id = cp.last_id
        part.since_checkpoint = 0
        if warm:
            self._catch_up(part)
        part.fresh = True

    def _load_state(self, part: _Partition, stored: StoredCheckpoint) -> bool:
        """Restore the state blob into ``part``'s fresh pipeline; on any problem warn once and start it cold."""
        referred = stored.record is not None and bool(stored.record.state_digest)
        if not self.config.checkpoint_state or (stored.blob is None and not referred):
            return False  # nothing saved (a first start, or checkpoints without state)
        problem = stored.state_problem()
        if problem is None and stored.record is not None and stored.blob is not None:
            where = self.layout.checkpoint_state(part.index, self.config.group)
            started = time.perf_counter()
            try:
                snapshot = self.state_codec.decode(stored.blob, where)
                restore(part.pipeline, snapshot, position=_position(part.index, stored.record.last_id))
            except SnapshotError as exc:
                problem = str(exc)
            else:
                self.stats.states_restored += 1
                log.info("partition %d: pipeline state restored from the checkpoint at entry %s (%d bytes, %.0f ms)",
                         part.index, stored.record.last_id, len(stored.blob),
                         (time.perf_counter() - started) * 1000)  # fmt: skip
                return True
        self.stats.states_ignored += 1
        seen = stored.record.state_digest if stored.record and stored.record.state_digest else "-"
        if part.ignored_state != seen:
            part.ignored_state = seen
            log.warning("partition %d: checkpoint state ignored, its pipeline starts cold: %s", part.index, problem)
        part.pipeline = self._new_pipeline(part.index)  # a failed restore may have loaded part of the state
        return False

    def _catch_up(self, part: _Partition) -> None:
        """Replay the entries accounted after the checkpoint (acknowledged by the previous worker, so never
        delivered again) into the pipeline only: no counting, no notification, no metrics delivery."""
        for entry_id, fields in self.accounted.after(part.index, part.last_id):
            try:
                batch = decode_entry(fields, entry_id)
            except InputError:
                pass  # counted as rejected when it was accounted; it taught the pipeline nothing
            else:
                self._replaying = True
                try:
                    v = part.pipeline.ingest(batch).validation
                finally:
                    self._replaying = False
                _undo(part.pipeline.counters, EntryCounts(v.received, v.accepted, v.rejected_count, v.duplicates,
                                                          dict(v.reason_counts)))  # fmt: skip
            part.last_id = entry_id
            self.stats.replayed += 1

    def _refresh_if_behind(self, part: _Partition) -> None:
        """Before the first entry a pipeline processes (since the worker started or restored it): if the
        partition's checkpoint is newer than the pipeline's position (written after this worker started, e.g.
        by a worker that has died since), restore from it."""
        cp = self.checkpoints.load(part.index)
        if cp is not None and _stream_id(cp.last_id) > _stream_id(part.last_id):
            self._restore(part)

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
        if part.fresh:
            self._refresh_if_behind(part)
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
            _undo(counters, counts)
        part.last_id = entry_id
        part.fresh = False
        part.since_checkpoint += 1
        if part.since_checkpoint >= self.config.checkpoint_every:
            self.checkpoint(part)

    def _deliver_metrics(self, index: int, processed: ProcessingResult, detections: pl.DataFrame) -> None:
        if self.on_metrics is not None and not self._replaying:
            self.on_metrics(index, processed, detections)

    def _on_alert(self, alert: Alert) -> None:
        if self._replaying:  # the worker that accounted the entry has handled its alerts
            return
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
        """Write ``part``'s counters, stream position and pipeline state to Redis, in one atomic step."""
        cp = Checkpoint.of(part.index, part.pipeline.counters, last_id=part.last_id,
                           consumer=self.config.consumer, saved_ms=int(time.time() * 1000))  # fmt: skip
        self.checkpoints.save(cp, self._state_blob(part))
        part.since_checkpoint = 0
        self.stats.checkpoints += 1
        self.stats.state_bytes = max(self.stats.state_bytes, cp.state_bytes)

    def _state_blob(self, part: _Partition) -> bytes | None:
        """``part``'s pipeline state as a blob; None when disabled, too large or not encodable (reported once;
        the record is then saved without state, and a takeover starts cold)."""
        if not self.config.checkpoint_state:
            return None
        try:
            blob = self.state_codec.encode(part.pipeline, _position(part.index, part.last_id))
        except (TypeError, ValueError) as exc:  # a value the format cannot hold: keep consuming, report it
            problem = f"cannot be encoded ({type(exc).__name__}: {exc})"
        else:
            if len(blob) <= self.config.max_state_bytes:
                part.state_unsaved = False
                return blob
            problem = f"of {len(blob)} bytes exceeds max_state_bytes ({self.config.max_state_bytes})"
        if not part.state_unsaved:
            part.state_unsaved = True
            log.warning("partition %d: pipeline state %s; checkpoints keep no state until it can be saved, and a "
                        "takeover starts cold", part.index, problem)  # fmt: skip
        return None

    def checkpoint_all(self) -> None:
        """Checkpoint every partition (on stop)."""
        for part in self.partitions.values():
            self.checkpoint(part)


def _position(partition: int, last_id: str) -> dict[str, Any]:
    """A partition snapshot's position: taken for ``partition`` after entry ``last_id`` was committed."""
    return {"partition": partition, "last_id": last_id}


def _undo(counters: PipelineCounters, counts: EntryCounts) -> None:
    """Take an entry's counts back out of ``counters`` (the group's accounting has them already)."""
    counters.received -= counts.received
    counters.accepted -= counts.accepted
    counters.rejected -= counts.rejected
    counters.duplicates -= counts.duplicates
    counters.reasons.subtract(counts.reasons)
    counters.reasons = +counters.reasons


def _stream_id(entry_id: str) -> tuple[int, int]:
    """``ms-seq`` as a comparable pair ((0, 0) for anything else)."""
    ms, _, seq = entry_id.partition("-")
    return (int(ms), int(seq or 0)) if ms.isdigit() and (seq or "0").isdigit() else (0, 0)


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
