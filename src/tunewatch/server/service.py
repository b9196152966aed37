"""LiveService: one live pipeline shared by the HTTP handlers (thread-safe), with its metrics, alerts and state.

Alerts (every state change), silences and rejected events (the quarantine) live in SQLite (``db``: a file survives
restarts, the default is an in-memory database); recent detection results per series are kept for charts.
"""

from __future__ import annotations

import functools
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import numpy as np
import polars as pl

from tunewatch.alert.engine import AlertEngine
from tunewatch.alert.log import AlertLog
from tunewatch.alert.model import Alert
from tunewatch.alert.rules import RuleSet, load_rules
from tunewatch.cache import MusicStreamingCacheManager
from tunewatch.clock import Clock, as_clock
from tunewatch.detect.stage import DetectionStage
from tunewatch.ingest.batch import RawBatch
from tunewatch.ingest.readers import parse_ndjson_bytes
from tunewatch.integrations.metadata import MetadataService
from tunewatch.monitor.profiling import SectionProfiler
from tunewatch.monitor.prometheus import PrometheusMetricsManager
from tunewatch.notify.matchers import Matcher
from tunewatch.notify.silence import Silence, SilenceStore
from tunewatch.pipeline.core import Pipeline
from tunewatch.pipeline.snapshot import (
    LEGACY_DETECTION_KEY,
    CachedSnapshot,
    SnapshotFile,
    SnapshotStore,
    resume,
)
from tunewatch.process.processor import ProcessingResult
from tunewatch.quarantine.crypto import configured_keyring
from tunewatch.quarantine.store import QuarantinedEvent, QuarantineStore
from tunewatch.security.audit import LOCAL_KID, AuditError, AuditLog, audit_keyring
from tunewatch.security.keyring import Keyring
from tunewatch.security.keys import ApiKeyStore
from tunewatch.server.decode import LinesPayload, Payload, RecordsPayload, decode_msgpack
from tunewatch.server.metrics import ServerMetrics
from tunewatch.server.overflow import cap_per_request
from tunewatch.server.report import IngestReport, split_lines_outcome, whole_report
from tunewatch.server.series import SeriesStore
from tunewatch.server.settings import ServerSettings
from tunewatch.simulate.live_clock import clock_status
from tunewatch.store.history import MetricHistory
from tunewatch.store.sqlite import connect
from tunewatch.store.wal import KIND_LINES, KIND_MSGPACK, IngestWal, WalRecord
from tunewatch.validate.validator import ValidationResult

__all__ = ["IngestReport", "LiveService"]

logger = logging.getLogger(__name__)


#: closed windows between two snapshots of the pipeline (detectors, stream state, alert rules' state)
CHECKPOINT_EVERY_WINDOWS = 5
#: how long an alert posted through the API without endsAt stays active after its last post (Alertmanager's)
RESOLVE_TIMEOUT_MS = 5 * 60_000
#: suffix of the ingest write-ahead log's folder beside the database
WAL_SUFFIX = ".ingest-wal"


class LiveService:
    """Owns the live pipeline, its Prometheus metrics, alert log, silences, API keys, quarantine and series.

    Safe to call from many threads: pipeline steps are serialised by one lock, each store has its own.
    """

    def __init__(
        self,
        rules: RuleSet | None = None,
        *,
        clock: Clock | Callable[[], float] | None = None,
        on_alert: Callable[[Alert], None] | None = None,
        history: int = 1000,
        db: str | Path | None = None,
        rules_path: Path | None = None,
        settings: ServerSettings | None = None,
        cache: MusicStreamingCacheManager | None = None,
        silences: SilenceStore | None = None,
        alert_log: AlertLog | None = None,
    ) -> None:
        self.settings = settings or ServerSettings()
        clock = as_clock(clock)
        self.metrics = PrometheusMetricsManager(clock=clock)
        #: metric windows and query results; memory by default, Redis / Redis Cluster by TUNEWATCH_CACHE_*
        self.cache = cache if cache is not None else MusicStreamingCacheManager()
        self.metrics.watch_cache(self.cache.stats)
        #: track/artist names for alerts on track_id/artist_id (Spotify / Last.fm, when credentials are set)
        self.metadata = MetadataService.from_env(self.cache)
        self._generation = 0  # bumped with every batch of detections: cached query results key on it
        self.clock: Clock = clock
        self.history_limit = history
        self.rules_path = rules_path
        #: the pipeline: held to validate and count a step, and for every operation on the whole pipeline state
        self._lock = threading.Lock()
        #: held to advance the stream with a counted step (processing, detection, alerts) on the advancing thread,
        #: while the next step is validated (see :meth:`ingest_payloads`)
        self._advance_lock = threading.Lock()
        self._advancer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tunewatch-advance")
        self._advancer_ident: int | None = None
        self._progress = threading.Condition()  # notified as steps advance
        self._accounted_steps = 0  # counted steps handed to the advancing thread (one or more steps each)
        #: counted steps whose advance is deferred (see ``ServerSettings.advance_every_s``), with their start times
        self._pending: list[tuple[ValidationResult, float]] = []
        self._pending_since = 0.0  # monotonic time the oldest pending step was counted
        self._advanced_steps = 0  # steps the stream has advanced with (never ahead of the counted ones)
        self._checkpoint_due = False  # a snapshot is due at the next moment both sides are at the same step
        self._on_alert = on_alert
        self._new_alerts: list[Alert] = []
        self._posted: dict[str, int] = {}  # fingerprint of an alert posted through the API -> when it expires (ms)
        self._requests = 0  # HTTP requests ingested, numbering quarantine entries
        target = str(db if db is not None else (self.settings.db or ":memory:"))
        self.db_path = target
        #: the one alert log (shared with the notifier): given by the composition root, else opened on the database
        self.alert_log = alert_log if alert_log is not None else AlertLog.open(target)
        self.keys = ApiKeyStore(connect(target, check_same_thread=False))
        self.metrics_extra = ServerMetrics(self.metrics.registry)
        #: administrative actions over HTTP, signed with the data key or else the server secret's audit key
        self.audit_log = AuditLog(
            target, audit_keyring(target) if target != ":memory:" else Keyring.generate(LOCAL_KID)
        )
        #: the one silence store (shared with the notifier and the CLI through the database): given by the
        #: composition root, else opened on the database
        self.silences = silences if silences is not None else SilenceStore.open(
            target, max_ms=self.settings.max_silence_ms, audit=self.audit
        )
        if target != ":memory:" and configured_keyring() is None:
            logger.warning(
                "no data key (TUNEWATCH_DATA_KEY[_FILE]): quarantined events' raw bytes and the pipeline state's "
                "user-id hashes are stored unencrypted (files are 0600); the audit trail is signed with the "
                "server secret %s",
                f"{target}.secret",
            )
        legacy = self.keys.legacy_count()
        if legacy:
            logger.warning(
                "%d API key(s) still have scrypt hashes: each is re-hashed at its first successful use "
                "(until then each check costs tens of ms); or replace them with `tunewatch keys create`",
                legacy,
            )
        #: every rejected event (raw bytes, reasons, where the client sent it) in the one quarantine store: the
        #: database's (survives restarts; `tunewatch quarantine` reads the same rows), in memory without one;
        #: /api/v1/quarantine serves it, masked as the CLI shows it. Its operations are audited by the store.
        self.quarantine = QuarantineStore(target, check_same_thread=False, audit=self.audit)
        self._quarantine_lock = threading.Lock()
        self.quarantined = 0  # rejected events since start (the ones summarised in an overflow row included)
        history_dir = self.settings.history_dir or (
            Path(target).with_suffix(".history") if target != ":memory:" else None
        )
        #: closed metric windows as Parquet by day, kept `history_retention_days` (cleaned up hourly)
        self.history = (
            MetricHistory(history_dir, retention_days=self.settings.history_retention_days) if history_dir else None
        )
        self._next_cleanup_ms = 0
        self.series = SeriesStore(self.settings.series_windows)
        self.profiler = SectionProfiler()
        self._rules = rules if rules is not None else load_rules(rules_path)
        #: the pipeline's snapshot (detectors, stream state, alert rules' state; :mod:`tunewatch.pipeline.snapshot`)
        #: beside the database, or in a Redis cache without a database file; none otherwise. Personal hashes in
        #: it are sealed when a data key is configured.
        self.snapshots = pipeline_snapshots(target, self.cache)
        #: the pipeline (validate, process, detect, alert), and the snapshot it resumed from (None: a fresh start)
        self.pipeline, self.restored = resume(self._new_pipeline, self.snapshots)
        self._windows_since_checkpoint = 0
        #: newest window already in the metric history: a window closed again by a WAL replay is not rewritten
        self._history_high = self.history.newest_window() if self.history is not None else None
        #: accepted requests' events, on disk before they are answered (see :mod:`tunewatch.store.wal`)
        self.wal = (
            IngestWal(Path(target).with_suffix(WAL_SUFFIX), fsync=self.settings.wal_fsync)
            if target != ":memory:" and self.settings.wal_fsync != "off"
            else None
        )
        self._wal_sync = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tunewatch-wal")
        self._replaying = False
        self.replayed = self._replay_wal()
        self.started = time.time()

    # ------------------------------------------------------------------------------------------- pipeline

    def audit(self, actor: str, action: str, target: str, **details: Any) -> None:
        """Record an administrative action in the audit trail; a failure is logged and counted, not raised
        (the action is already done)."""
        try:
            self.audit_log.record(actor, action, target, **details)
        except (AuditError, sqlite3.Error) as exc:
            self.metrics_extra.audit_failures.inc()
            logger.error("audit entry for %s on %s not recorded: %s", action, target, exc)

    def _alert(self, alert: Alert) -> None:
        if self.metadata is not None and alert.status == "firing":
            alert.annotations.update(self.metadata.enrich_alert_labels(alert.labels))
        self._new_alerts.append(alert)
        self.metrics.record_alert_change(alert.status, alert.name)
        if self._on_alert is not None:
            self._on_alert(alert)

    def _detections(self, processed: ProcessingResult, detections: pl.DataFrame) -> None:
        self.series.add(detections)
        self.cache.store(processed)
        self._generation += 1
        self._windows_since_checkpoint += len(processed.windows)
        if self._windows_since_checkpoint >= CHECKPOINT_EVERY_WINDOWS and not self._replaying:
            self._checkpoint_due = True  # taken once validation and the stream are at the same step
        if self.history is not None:
            metrics = processed.metrics
            if self._history_high is not None:
                metrics = metrics.filter(pl.col("window_start") > self._history_high)
            if not metrics.is_empty():
                self.history.append(metrics)
                self._history_high = int(metrics.get_column("window_start").max())  # type: ignore[arg-type]
            now = self.now_ms()
            if now >= self._next_cleanup_ms:
                self.history.cleanup(now)
                self._next_cleanup_ms = now + 3_600_000
        self.metrics.record_detection(
            detections, series=self.pipeline.detection.series_count, detectors=len(self.pipeline.detection.detectors)
        )

    def _new_pipeline(self) -> Pipeline:
        return Pipeline(self._rules, live=True, clock=self.clock, on_alert=self._alert, on_metrics=self._detections)

    def checkpoint(self) -> None:
        """Snapshot the pipeline now and wait until it is written: for a clean shutdown, so that a restart resumes
        exactly where this process stopped."""
        with self._lock:
            self._drain()
            self._checkpoint(background=False)

    def _drain(self) -> None:
        """Wait until the stream has advanced with every counted step, deferred ones included (caller holds the
        lock, so that no step is counted meanwhile): the whole pipeline state is then at one step."""
        self._hand_on([], defer=False)
        with self._progress:
            self._progress.wait_for(lambda: self._advanced_steps >= self._accounted_steps)

    def _checkpoint(self, *, background: bool) -> None:
        """Snapshot the pipeline (caller holds the lock, and the stream has advanced with every counted step);
        the WAL starts a new segment, and the old ones are deleted once the snapshot that covers them is
        written."""
        self._windows_since_checkpoint = 0
        self._checkpoint_due = False
        if self.snapshots is None:
            return
        release = None
        if self.wal is not None:
            self.wal.rotate()
            release = functools.partial(self.wal.release, self.pipeline.wal_seq)
        self.snapshots.save(self.pipeline, {"wal_seq": self.pipeline.wal_seq}, background=background,
                            on_saved=release)  # fmt: skip

    def _replay_wal(self) -> int:
        """Run the WAL records the stream state does not include (a crash after they were acknowledged); return
        how many. Their rejected events were quarantined before the crash and are not stored again."""
        if self.wal is None:
            return 0
        records = list(self.wal.records(after=self.pipeline.wal_seq))
        if not records:
            return 0
        self._replaying = True
        try:
            with self._lock:
                for record in records:
                    self.pipeline.wal_seq = record.seq
                    self._step(_wal_batch(record), replay=True)
                self._checkpoint(background=False)
        finally:
            self._replaying = False
        events = self.pipeline.counters.received
        logger.warning(
            "ingest WAL: %d acknowledged request batch(es), %d events, replayed after an unclean stop",
            len(records), events,
        )  # fmt: skip
        return len(records)

    def series_points(self, metric: str, dims: Mapping[str, str]) -> list[dict[str, Any]]:
        """Points of one series, read through the cache until the next batch of detections arrives."""
        self.settle()
        key = "series:" + metric + ":" + ",".join(f"{k}={v}" for k, v in sorted(dims.items()))
        return cast(
            list[dict[str, Any]],
            self.cache.get_or_compute(f"{key}@{self._generation}", lambda: self.series.points(metric, dims), ttl=300),
        )

    def now_ms(self) -> int:
        """The service clock in epoch milliseconds (simulated in ``tunewatch run``)."""
        return self.clock.now_ms()

    def _step(
        self,
        batch: RawBatch,
        owners: Callable[[pl.DataFrame], np.ndarray] | None = None,
        locate: Callable[[int], dict[str, Any]] | None = None,
        *,
        replay: bool = False,
    ) -> ValidationResult:
        """One pipeline step in the caller's thread (caller holds the lock, the stream has advanced with every
        counted step): :meth:`_account` then :meth:`_advance`; a snapshot that falls due is taken at once (not
        while replaying the WAL)."""
        t0 = time.perf_counter()
        with self.profiler.section():
            v = self._account(batch, owners, locate, replay=replay)
        with self._advance_lock:
            self._advance(v, [t0])
        if self._checkpoint_due and not replay:
            self._checkpoint(background=True)
        return v

    def _account(
        self,
        batch: RawBatch,
        owners: Callable[[pl.DataFrame], np.ndarray] | None = None,
        locate: Callable[[int], dict[str, Any]] | None = None,
        *,
        replay: bool = False,
    ) -> ValidationResult:
        """The part of a step its answers depend on (caller holds the lock): validation, the running totals,
        rejected events quarantined, validation metrics.

        At most ``max_quarantine_per_request`` rejected rows per request are quarantined one by one (``owners``
        names each rejected row's request; the rest are summarised); ``locate`` maps a row's ``line_no`` to where
        its client sent it (request, line or index), kept with it.
        """
        v = self.pipeline.validate(batch)
        self.pipeline.account(v)
        kept = v.rejected
        if v.rejected_count > self.settings.max_quarantine_per_request:
            owner = owners(v.rejected) if owners is not None else np.zeros(v.rejected.height, dtype=np.int64)
            kept, omitted = cap_per_request(v.rejected, owner, self.settings.max_quarantine_per_request)
            self.metrics_extra.quarantine_overflow(omitted)
        if not replay:  # a WAL replay's rejected events were quarantined before the crash
            self.quarantined += v.rejected.height
            if kept.height:
                self._quarantine(kept, locate)
        self.metrics.record_validation(
            received=v.received, accepted=v.accepted, rejected=v.reason_counts, duplicates=v.duplicates
        )
        return v

    def _advance(self, v: ValidationResult, started: Sequence[float]) -> None:
        """The rest of the steps begun at ``started`` (``perf_counter``) by :meth:`_account`, ``v`` their results
        combined (caller holds the advance lock; steps advance in the order they were counted): processing,
        detection, alerts (persisted), their metrics."""
        with self.profiler.section():
            outcome = self.pipeline.advance(v)
        m = self.metrics
        now = time.perf_counter()
        for t0 in started:
            m.observe_stage("pipeline", now - t0)
        m.record_metrics(outcome.processed)
        m.record_watermark(v.watermark)
        if self._new_alerts:
            self.alert_log.record(self._new_alerts, self.now_ms())
            self._new_alerts = []
        if self.alert_log.restored and outcome.processed.windows:
            self._settle_restored(v.watermark)
        m.record_alerts(self.alert_log.active())

    def _quarantine(self, kept: pl.DataFrame, locate: Callable[[int], dict[str, Any]] | None) -> None:
        """Store rejected rows with where their client sent them (bounded per request: a loop over kept rows)."""
        if locate is not None:
            where = [None if n is None else json.dumps(locate(int(n))) for n in kept.get_column("line_no").to_list()]
            kept = kept.with_columns(pl.Series("location", where, dtype=pl.String))
        with self._quarantine_lock:
            self.quarantine.add(kept)

    def quarantined_total(self) -> int:
        """Quarantined events stored (every state)."""
        with self._quarantine_lock:
            return self.quarantine.count()

    def recent_quarantine(self, limit: int) -> list[QuarantinedEvent]:
        """The newest ``limit`` quarantined events (any state), newest first."""
        with self._quarantine_lock:
            return self.quarantine.recent(limit)

    def _settle_restored(self, watermark: int | None) -> None:
        """Alerts restored from the database: confirmed when the engine fires them, resolved after a grace period."""
        confirmed = {a.fingerprint for a in self.pipeline.engine.active()}
        expire = self.pipeline.counters.windows >= self.settings.restored_alert_grace_windows
        for alert in self.alert_log.settle_restored(confirmed, expire=expire, at_ms=watermark, now_ms=self.now_ms()):
            self.metrics.record_alert_change(alert.status, alert.name)
            if self._on_alert is not None:
                self._on_alert(alert)

    def ingest(self, batch: RawBatch) -> IngestReport:
        """Run one batch through the pipeline; report on the whole batch."""
        if self._posted:
            self.expire_posted()
        with self._lock:
            self._drain()
            return whole_report(self._step(batch))

    def ingest_payloads(
        self, payloads: Sequence[Payload], on_ready: Callable[[list[IngestReport], Future[None]], None] | None = None
    ) -> list[IngestReport]:
        """Run many requests' events as one step: every NDJSON/JSON payload joined, msgpack ones each alone.

        A step is validated, counted and its rejected events quarantined here, under the pipeline lock (its WAL
        record is written first; the fsync runs meanwhile on the WAL thread); the stream then advances with it
        (processing, detection, alerts) on the advancing thread, steps in the order they were counted. Without
        ``on_ready``, returns each request's report once its events are durable and the stream has advanced with
        them. With ``on_ready``, it is called (in this thread) with the reports and a future that completes when
        the events are durable (or fails if the WAL write did): the caller answers when that future completes,
        without waiting for the advance. This then returns once the stream has advanced with the step, or at once
        with ``overlap_steps`` (the caller may validate its next step meanwhile). Queries wait until the stream
        has advanced with every step counted before they were made (:meth:`settle`), so that they read what the
        answers reported.
        """
        if self._posted:
            self.expire_posted()
        commits: list[Future[None]] = []
        accounted: list[tuple[ValidationResult, float]] = []
        with self._lock:
            if self._checkpoint_due or (
                self.wal is not None and self.wal.bytes_since_rotation >= self.settings.wal_checkpoint_bytes
            ):
                self._drain()
                self._checkpoint(background=True)
            try:
                with self.profiler.section():  # the part of the step its answers wait for
                    ordered = self._account_payloads(payloads, commits, accounted)
            finally:  # what was counted advances the stream, even when a later part of the step failed
                advanced = self._hand_on(accounted, defer=on_ready is not None)
        if on_ready is not None:
            on_ready(ordered, _all_done(commits))
            if advanced is not None and not self.settings.overlap_steps:
                advanced.result()  # the next step waits for this advance (see ServerSettings.overlap_steps)
            return ordered
        if advanced is not None:
            advanced.result()
        for commit in commits:  # the answers wait until their events are durable
            commit.result()
        return ordered

    def _account_payloads(
        self,
        payloads: Sequence[Payload],
        commits: list[Future[None]],
        accounted: list[tuple[ValidationResult, float]],
    ) -> list[IngestReport]:
        """Log, validate and count one step's requests (caller holds the lock); each request's report. The WAL
        writes' fsyncs are added to ``commits``, the validated batches (with their start times) to
        ``accounted``."""
        lines = [(i, p) for i, p in enumerate(payloads) if isinstance(p, LinesPayload)]
        reports: dict[int, IngestReport] = {}
        first = self._requests + 1
        self._requests += len(payloads)
        if lines:
            t0 = time.perf_counter()
            joined = b"".join(p.lines for _, p in lines)
            if self.wal is not None:
                self.pipeline.wal_seq = self._log(KIND_LINES, joined, commits)
            batch = parse_ndjson_bytes(joined, source="http")
            starts = np.cumsum([0] + [p.count for _, p in lines])

            def owners(rejected: pl.DataFrame) -> np.ndarray:
                line_nos = rejected.get_column("line_no").fill_null(1).to_numpy()
                return np.searchsorted(starts, line_nos - 1, side="right") - 1

            def locate(line_no: int) -> dict[str, Any]:
                k = int(np.searchsorted(starts, line_no - 1, side="right")) - 1
                i, p = lines[k]
                return {"request": first + i, p.kind: p.position(line_no - int(starts[k]))}

            result = self._account(batch, owners, locate)
            accounted.append((result, t0))
            for (i, _), report in zip(lines, split_lines_outcome(batch, result, [p for _, p in lines]), strict=True):
                reports[i] = report
        for i, p in enumerate(payloads):
            if isinstance(p, RecordsPayload):
                t0 = time.perf_counter()
                if self.wal is not None:
                    self.pipeline.wal_seq = self._log(KIND_MSGPACK, p.raw, commits)
                result = self._account(p.batch, locate=functools.partial(_index_of, request=first + i))
                accounted.append((result, t0))
                reports[i] = whole_report(result)
        return [reports[i] for i in range(len(payloads))]

    def _hand_on(self, accounted: list[tuple[ValidationResult, float]], *, defer: bool) -> Future[None] | None:
        """Add ``accounted`` to the counted steps not yet handed to the advancing thread, and hand them all on as
        one advance (caller holds the lock); None when there is nothing to hand on, or when ``defer`` and the
        oldest of them was counted less than ``advance_every_s`` ago.

        The stream's advance (processing, detection, alerts) costs milliseconds whatever its size, so under load
        the steps counted meanwhile advance together: as if the batcher had made one larger step of them (every
        event is validated, counted and answered as before; the windows they close are the same, since an
        accepted event is never older than the windows already closed). The batcher hands deferred steps on as
        soon as it has no request waiting (:meth:`advance_pending`), queries and snapshots first hand them on
        (:meth:`settle`, :meth:`_drain`)."""
        if accounted:
            if not self._pending:
                self._pending_since = time.monotonic()
            self._pending.extend(accounted)
        if not self._pending or (defer and time.monotonic() - self._pending_since < self.settings.advance_every_s):
            return None
        pending, self._pending = self._pending, []
        return self._advance_later(pending)

    def advance_pending(self) -> None:
        """Hand the deferred steps on to the advancing thread (see :meth:`_hand_on`) and, unless
        ``overlap_steps``, wait until the stream has advanced with them: the batcher calls this when no request
        waits."""
        with self._lock:
            advanced = self._hand_on([], defer=False)
        if advanced is not None and not self.settings.overlap_steps:
            advanced.result()

    @property
    def advance_deferred(self) -> bool:
        """Whether counted steps wait to be handed to the advancing thread (see :meth:`_hand_on`)."""
        return bool(self._pending)

    def _advance_later(self, accounted: list[tuple[ValidationResult, float]]) -> Future[None]:
        """Count one more advance and hand it to the advancing thread (caller holds the lock)."""
        with self._progress:
            self._accounted_steps += 1
        return self._advancer.submit(self._advance_step, accounted)

    def _advance_step(self, accounted: list[tuple[ValidationResult, float]]) -> None:
        """Advance the stream with counted steps, as one (on the advancing thread); then take a snapshot that fell
        due if nothing is being validated and no other step waits to advance."""
        self._advancer_ident = threading.get_ident()
        try:
            with self._advance_lock:
                self._advance(ValidationResult.combine([r for r, _ in accounted]), [t0 for _, t0 in accounted])
                if self._checkpoint_due and self._lock.acquire(blocking=False):
                    try:
                        # these steps are the last counted (none deferred: the snapshot's WAL position covers them)
                        if self._accounted_steps == self._advanced_steps + 1 and not self._pending:
                            self._checkpoint(background=True)
                    finally:
                        self._lock.release()
        except Exception:
            logger.exception("pipeline step failed while advancing the stream (its requests were counted)")
            raise
        finally:
            with self._progress:
                self._advanced_steps += 1
                self._progress.notify_all()

    @property
    def settled(self) -> bool:
        """Whether the stream has advanced with every step counted so far (see :meth:`settle`)."""
        return not self._pending and self._advanced_steps >= self._accounted_steps

    def settle(self) -> None:
        """Wait until the stream has advanced with every step counted so far (see :meth:`ingest_payloads`), so
        that a query reads what the answers already sent reported; at once when none is pending, or when called
        from the advancing thread itself (an ``on_alert`` listener)."""
        if threading.get_ident() == self._advancer_ident:
            return
        if self._pending:
            with self._lock:
                self._hand_on([], defer=False)
        with self._progress:
            target = self._accounted_steps
            self._progress.wait_for(lambda: self._advanced_steps >= target)

    def _log(self, kind: int, payload: bytes, commits: list[Future[None]]) -> int:
        """Write a step to the WAL; its fsync runs on the WAL thread while the step runs (caller holds the lock)."""
        assert self.wal is not None
        seq = self.wal.append(kind, payload, commit=False)
        commits.append(self._wal_sync.submit(self.wal.commit, seq))
        return seq

    def reload_rules(self) -> RuleSet:
        """Reload the rule file (the built-in pack without one); detectors restart their warm-up.

        Raises :class:`tunewatch.errors.ConfigError` for an invalid file (the old rules stay in force).
        """
        rules = load_rules(self.rules_path)
        with self._lock:
            self._drain()
            self._rules = rules
            self.pipeline.rules = rules
            self.pipeline.detection = DetectionStage(rules.targets(), entity_prior=self.pipeline.processor.entity_prior)
            self.pipeline.engine = AlertEngine(rules)
        return rules

    # ------------------------------------------------------------------------------------------- queries

    def active_alerts(self) -> list[Alert]:
        """Alerts firing now (kept in the alert log, so they survive a restart); posted alerts past their expiry
        are resolved first. Not to be called while holding the pipeline lock."""
        self.settle()
        if self._posted:
            self.expire_posted()
        return self.alert_log.active()

    def alert_history(self) -> list[Alert]:
        """Recent alert state changes, newest last."""
        self.settle()
        return self.alert_log.history(self.history_limit)

    def post_alerts(self, alerts: Sequence[Alert], resolve_timeout_ms: int = RESOLVE_TIMEOUT_MS) -> int:
        """Take alerts from outside (Alertmanager's ``POST /api/v2/alerts``, e.g. from Prometheus).

        A firing alert stays active until its ``ends_at`` (then cleared from the alert), else until
        ``resolve_timeout_ms`` after its last post; one with ``ends_at`` in the past is resolved. Only changes
        (new, resolved, new annotations) are recorded in the alert log and handed to the notifier: a re-post
        only moves the expiry. Returns how many changed.
        """
        now = self.now_ms()
        with self._lock:
            self._drain()
            active = {a.fingerprint: a for a in self.alert_log.active()}
            changed: list[Alert] = []
            for alert in alerts:
                fp = alert.fingerprint
                if alert.ends_at is None or alert.ends_at > now:
                    self._posted[fp] = alert.ends_at if alert.ends_at is not None else now + resolve_timeout_ms
                    firing = Alert(alert.labels, alert.annotations, "firing", alert.starts_at, None,
                                   alert.generator_url, alert.extra)  # fmt: skip
                    old = active.get(fp)
                    if old is None or old.annotations != firing.annotations or old.starts_at != firing.starts_at:
                        changed.append(firing)
                elif fp in active:
                    self._posted.pop(fp, None)
                    changed.append(alert)
            self._emit(changed, now)
            return len(changed)

    def expire_posted(self) -> int:
        """Resolve posted alerts whose expiry passed (see :meth:`post_alerts`); return how many."""
        now = self.now_ms()
        if not self._posted:
            return 0
        with self._lock:
            self._drain()
            due = {fp: at for fp, at in self._posted.items() if at <= now}
            for fp in due:
                del self._posted[fp]
            resolved = [
                Alert(a.labels, a.annotations, "resolved", a.starts_at, due[a.fingerprint], a.generator_url, a.extra)
                for a in self.alert_log.active()
                if a.fingerprint in due
            ]
            self._emit(resolved, now)
            return len(resolved)

    def _emit(self, alerts: list[Alert], now_ms: int) -> None:
        """Record alert changes made outside the rule engine and hand them on (caller holds the lock)."""
        if not alerts:
            return
        self.alert_log.record(alerts, now_ms)
        for alert in alerts:
            self.metrics.record_alert_change(alert.status, alert.name)
            if self._on_alert is not None:
                self._on_alert(alert)

    def silenced_by(self, alert: Alert, now_ms: int | None = None) -> list[str]:
        """Ids of the active silences that mute ``alert``."""
        return self.silences.muting(alert.labels, self.now_ms() if now_ms is None else now_ms)

    def add_silence(
        self, matchers: Sequence[Matcher], *, starts_at: int | None, ends_at: int, created_by: str, comment: str,
        actor: str | None = None, via: str | None = None,
    ) -> Silence:  # fmt: skip
        """Create a silence (see :meth:`SilenceStore.add`, audited); ``starts_at`` None means now."""
        now = self.now_ms()
        return self.silences.add(
            matchers, starts_at=now if starts_at is None else starts_at, ends_at=ends_at, created_by=created_by,
            comment=comment, now_ms=now, actor=actor, via=via,
        )  # fmt: skip

    def update_silence(
        self, silence_id: str, matchers: Sequence[Matcher], *, starts_at: int, ends_at: int, created_by: str,
        comment: str, actor: str | None = None, via: str | None = None,
    ) -> Silence:  # fmt: skip
        """Change a silence (see :meth:`SilenceStore.update`, audited)."""
        return self.silences.update(
            silence_id, matchers, starts_at=starts_at, ends_at=ends_at, created_by=created_by, comment=comment,
            now_ms=self.now_ms(), actor=actor, via=via,
        )  # fmt: skip

    def list_silences(self) -> list[Silence]:
        """Every silence, newest first."""
        return self.silences.find(self.now_ms())

    def expire_silence(self, silence_id: str, *, actor: str | None = None, via: str | None = None) -> Silence:
        """End a silence now (audited)."""
        return self.silences.expire(silence_id, self.now_ms(), actor=actor, via=via)

    def ready(self) -> dict[str, bool]:
        """Dependency checks for ``/readyz``: each database connection answers."""
        checks = {
            "alert_db": _answers(self.alert_log.ping),
            "silence_db": _answers(lambda: self.silences.find(0)),
        }
        checks["pipeline"] = not self._lock.locked() or (self._lock.acquire(timeout=5.0) and _release(self._lock))
        return checks

    def status(self) -> dict[str, Any]:
        """Counters for the health endpoint and the console."""
        self.settle()
        c = self.pipeline.counters
        return {
            "received": c.received,
            "accepted": c.accepted,
            "rejected": c.rejected,
            "duplicates": c.duplicates,
            "windows": c.windows,
            "watermark": self.pipeline.validator.watermark.value,
            "active_alerts": len(self.alert_log.active()),
            "quarantined": self.quarantined,
            "uptime_s": round(time.time() - self.started, 1),
            **clock_status(self.clock),
        }


def pipeline_snapshots(db: str, cache: MusicStreamingCacheManager) -> SnapshotStore | None:
    """Where a service with database ``db`` keeps its pipeline snapshot: a file beside a database file (adopting
    the former stream-state file, and the detectors the cache may still hold), else a Redis cache, else nowhere."""
    keyring = configured_keyring()
    if db != ":memory:":
        return SnapshotFile.beside(db, keyring=keyring, legacy_detection=lambda: cache.get(LEGACY_DETECTION_KEY))
    if cache.remote is not None:
        return CachedSnapshot(cache, keyring=keyring)
    return None


def _all_done(futures: Sequence[Future[None]]) -> Future[None]:
    """A future that completes when all of ``futures`` have (at once without any), failing with the first error."""
    done: Future[None] = Future()
    pending = len(futures)
    if not pending:
        done.set_result(None)
        return done
    lock = threading.Lock()

    def one(f: Future[None]) -> None:
        nonlocal pending
        with lock:
            pending -= 1
            last = pending == 0
            error = f.exception()
            if done.done():
                return
            if error is not None:
                done.set_exception(error)
            elif last:
                done.set_result(None)

    for f in futures:
        f.add_done_callback(one)
    return done


def _wal_batch(record: WalRecord) -> RawBatch:
    """The batch a WAL record logged."""
    if record.kind == KIND_MSGPACK:
        return decode_msgpack(record.payload).batch
    return parse_ndjson_bytes(record.payload, source="http")


def _index_of(line_no: int, *, request: int) -> dict[str, Any]:
    """Quarantine location of a msgpack request's row (the validator numbers rows from 1)."""
    return {"request": request, "index": line_no - 1}


def _answers(probe: Callable[[], object]) -> bool:
    """Whether a database probe runs without a database error."""
    try:
        probe()
    except sqlite3.Error:
        return False
    return True


def _release(lock: threading.Lock) -> bool:
    lock.release()
    return True
