"""The streaming pipeline over micro-batches: one object holds every stage's state."""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import polars as pl

from tunewatch.alert.engine import AlertEngine
from tunewatch.alert.model import Alert
from tunewatch.alert.rules import RuleSet, load_rules
from tunewatch.clock import Clock
from tunewatch.detect.detections import Detections
from tunewatch.detect.stage import DetectionStage, DetectorFactory, EntityPrior, default_detector
from tunewatch.ingest.batch import RawBatch
from tunewatch.process.processor import MusicDataProcessor, ProcessingResult
from tunewatch.process.quality import QUALITY_COLUMNS
from tunewatch.validate.validator import EnterpriseDataValidator, Events, ValidationResult
from tunewatch.validate.watermark import DEFAULT_ALLOWED_LATENESS_MS

log = logging.getLogger(__name__)

#: layout version of the stream state assembled by :meth:`Pipeline.stream_state_dict`
STREAM_STATE_VERSION: Final = 1


@dataclass(slots=True)
class PipelineCounters:
    """Running totals: the accounting invariant is ``received == accepted + rejected + duplicates``."""

    received: int = 0
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    windows: int = 0
    alerts_firing: int = 0
    alerts_resolved: int = 0

    @property
    def balanced(self) -> bool:
        """True when every received event is accounted for."""
        return self.received == self.accepted + self.rejected + self.duplicates

    @property
    def success_rate(self) -> float:
        """accepted / received."""
        return self.accepted / self.received if self.received else 1.0


@dataclass(slots=True)
class BatchOutcome:
    """What one batch did: its validation result, the metrics of windows it closed, their detections, and alert
    changes."""

    validation: ValidationResult
    processed: ProcessingResult
    found: Detections
    alerts: list[Alert]

    @property
    def detections(self) -> pl.DataFrame:
        """The detections as one frame (``DETECTION_SCHEMA``), made when first asked for."""
        return self.found.frame()


class Pipeline:
    """ingest → validate → process → detect → alert, in event time, over micro-batches.

    ``on_rejected`` receives every batch's rejected rows (quarantine); ``on_alert`` every alert change;
    ``validation_rules`` is a YAML file of custom business rules (see docs/validation.md).
    """

    def __init__(
        self,
        rules: RuleSet | None = None,
        *,
        live: bool = False,
        allowed_lateness_ms: int = DEFAULT_ALLOWED_LATENESS_MS,
        top_k: int = 50,
        detector_factory: DetectorFactory = default_detector,
        clock: Clock | Callable[[], float] | None = None,
        on_alert: Callable[[Alert], None] | None = None,
        on_rejected: Callable[[pl.DataFrame], object] | None = None,
        on_metrics: Callable[[ProcessingResult, pl.DataFrame], None] | None = None,
        stage_timer: Callable[[str], AbstractContextManager[object]] | None = None,
        validation_rules: str | Path | None = None,
    ) -> None:
        self.rules = rules or load_rules()
        self.validator = EnterpriseDataValidator(
            allowed_lateness_ms=allowed_lateness_ms, live=live, clock=clock, custom_rules=validation_rules
        )
        self.processor = MusicDataProcessor(allowed_lateness_ms=allowed_lateness_ms, top_k=top_k)
        self.detection = DetectionStage(
            self.rules.targets(), detector_factory, entity_prior=self.processor.entity_prior
        )
        self.engine = AlertEngine(self.rules)
        self.counters = PipelineCounters()
        self.on_alert = on_alert
        self.on_rejected = on_rejected
        self.on_metrics = on_metrics
        self.live = live
        #: times each stage (e.g. PrometheusMetricsManager.time_stage); the pipeline does not import monitor/
        self.stage_timer: Callable[[str], AbstractContextManager[object]] = stage_timer or (lambda _s: nullcontext())
        self.clock: Clock = self.validator.clock  # one clock for validation and live windows
        self._recent_reasons: deque[dict[str, int]] = deque(maxlen=20)  # for data-quality alert annotations
        #: sequence number of the last ingest-WAL record applied (kept in the stream state: replay starts after it)
        self.wal_seq = 0
        #: the detections of a batch that closes no window (most live steps): made once, it is never changed
        self._no_detections = Detections.empty()

    def ingest(self, events: RawBatch | Events) -> BatchOutcome:
        """Run one micro-batch through every stage; windows close as the watermark passes them.

        The same as :meth:`apply` of :meth:`validate`: replay validates the next batch (in its reading thread)
        while the current one goes through the later stages."""
        with self.stage_timer("ingest"):
            return self.apply(self.validate(events))

    def validate(self, events: RawBatch | Events) -> ValidationResult:
        """The first stage of :meth:`ingest`: validation (it keeps the validator's state: duplicates, watermark).
        Batches must be validated in order, and applied in that order."""
        with self.stage_timer("validate"):
            return self.validator.validate(events)

    def apply(self, result: ValidationResult) -> BatchOutcome:
        """The stages of :meth:`ingest` after validation: accounting, quarantine, processing, detection, alerts."""
        self.account(result)
        return self.advance(result)

    def advance(self, result: ValidationResult) -> BatchOutcome:
        """The stages of :meth:`apply` after :meth:`account`: processing, detection, alerts.

        The live service accounts a step's events and answers its requests before it advances the stream with
        them (see :meth:`tunewatch.server.service.LiveService.ingest_payloads`); both in validation order.
        Replay runs the three stages of this (:meth:`process`, :meth:`detect`, :meth:`alert`) each in a thread of
        its own, on successive batches; each stage takes the batches in validation order."""
        return self._downstream(result, self.process(result))

    def process(self, result: ValidationResult) -> ProcessingResult:
        """The first stage of :meth:`advance`: the windows ``result`` closes, aggregated (the processor's state
        only)."""
        with self.stage_timer("process"):
            now_s = self.clock.now_ms() / 1000 if self.live else None
            return self.processor.process(result, final=False, now_s=now_s)

    def detect(self, processed: ProcessingResult, entity_prior: EntityPrior | None = None) -> Detections:
        """The second stage of :meth:`advance`: detections over the windows ``processed`` closed (the detection
        stage's state only).

        ``entity_prior`` is where the detection stage starts new track and artist series from: by default the
        processor's heavy hitters as they are now; a caller that processes ahead of detection (replay's processing
        thread) passes :meth:`MusicDataProcessor.entity_prior_snapshot` taken right after ``processed``."""
        if not processed.windows:
            return self._no_detections
        with self.stage_timer("detect"):
            if entity_prior is None:
                return self.detection.detect(processed.metrics, until=processed.windows[-1])
            own = self.detection.entity_prior
            self.detection.entity_prior = entity_prior
            try:
                return self.detection.detect(processed.metrics, until=processed.windows[-1])
            finally:
                self.detection.entity_prior = own

    def finish(self) -> BatchOutcome:
        """End of stream: close every open window and evaluate it."""
        self.validator.watermark.observe_end()
        empty = self.validator.validate(pl.DataFrame())
        processed = self.processor.flush()
        return self._downstream(empty, processed)

    def account(self, result: ValidationResult) -> None:
        """Add a validated batch's outcomes to the running totals, and hand its rejected rows to ``on_rejected``
        (the first part of :meth:`apply`)."""
        c = self.counters
        c.received += result.received
        c.accepted += result.accepted
        c.rejected += result.rejected_count
        c.duplicates += result.duplicates
        c.reasons.update(result.reason_counts)
        if result.reason_counts:
            self._recent_reasons.append(result.reason_counts)
        if result.rejected_count and self.on_rejected is not None:
            self.on_rejected(result.rejected)

    def _downstream(self, result: ValidationResult, processed: ProcessingResult) -> BatchOutcome:
        return self.alert(result, processed, self.detect(processed))

    def alert(self, result: ValidationResult, processed: ProcessingResult, detections: Detections) -> BatchOutcome:
        """The last stage of :meth:`advance`: the alert changes of ``detections`` (the windows ``processed``
        closed), handed to ``on_alert`` and counted (the alert engine's state and the counters)."""
        alerts: list[Alert] = []
        if processed.windows:
            self.counters.windows += len(processed.windows)
            if self.on_metrics is not None:
                self.on_metrics(processed, detections.frame())
            with self.stage_timer("alert"):
                alerts = self.engine.evaluate(detections, processed.metrics)
            for alert in alerts:
                if alert.status == "firing" and alert.labels.get("metric") in QUALITY_COLUMNS:
                    self._explain_quality(alert)
                if alert.status == "firing":
                    self.counters.alerts_firing += 1
                else:
                    self.counters.alerts_resolved += 1
                if self.on_alert is not None:
                    self.on_alert(alert)
        return BatchOutcome(validation=result, processed=processed, found=detections, alerts=alerts)

    def _explain_quality(self, alert: Alert) -> None:
        """Add the most frequent recent rejection reasons to a data-quality alert."""
        recent: Counter[str] = Counter()
        for counts in self._recent_reasons:
            recent.update(counts)
        if recent:
            alert.annotations["top_rejection_reasons"] = ", ".join(f"{r} ({n:,})" for r, n in recent.most_common(5))

    # ---------------------------------------------------------------------------------------- state
    # (saved and restored with the detectors' and the alert rules' state by tunewatch.pipeline.snapshot)

    def stream_state_dict(self) -> dict[str, Any]:
        """The stream state (validator and processor), as plain values, NumPy arrays and Arrow-backed frames."""
        return {
            "component": "Pipeline",
            "version": STREAM_STATE_VERSION,
            "validator": self.validator.state_dict(),
            "processor": self.processor.state_dict(),
            "detection_next_window": self.detection.next_window,
            "wal_seq": self.wal_seq,
        }

    def load_stream_state_dict(self, state: dict[str, Any]) -> None:
        """Resume the stream from :meth:`stream_state_dict` output; raises ``ValueError`` (naming the component
        and the versions) for another layout, and then leaves the stream state as it was."""
        found = state.get("component"), state.get("version")
        if found != ("Pipeline", STREAM_STATE_VERSION):
            raise ValueError(
                f"Pipeline stream state: component {found[0]!r} layout version {found[1]!r} is not supported "
                f"(this version of tunewatch reads Pipeline version {STREAM_STATE_VERSION})"
            )
        before = self.stream_state_dict()
        try:
            self.validator.load_state_dict(state["validator"])
            self.processor.load_state_dict(state["processor"])
            self.wal_seq = int(state.get("wal_seq", 0))
        except Exception:
            self.validator.load_state_dict(before["validator"])
            self.processor.load_state_dict(before["processor"])
            raise
