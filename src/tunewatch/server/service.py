"""LiveService: one live pipeline shared by the HTTP handlers (thread-safe), with its metrics and alerts."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tunewatch.alert.model import Alert
from tunewatch.alert.rules import RuleSet
from tunewatch.ingest.batch import RawBatch
from tunewatch.monitor.prometheus import PrometheusMetricsManager
from tunewatch.pipeline.core import Pipeline


@dataclass(slots=True)
class IngestReport:
    """What one ingest call did."""

    received: int
    accepted: int
    rejected: int
    duplicates: int
    errors: list[str]

    def to_dict(self) -> dict[str, Any]:
        """JSON form returned by the ingest endpoint."""
        return {
            "received": self.received,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "duplicates": self.duplicates,
            "errors": self.errors,
        }


class LiveService:
    """Owns the live pipeline, its Prometheus metrics and the alert history; safe to call from many threads."""

    def __init__(
        self,
        rules: RuleSet | None = None,
        *,
        clock: Callable[[], float] = time.time,
        on_alert: Callable[[Alert], None] | None = None,
        history: int = 1000,
    ) -> None:
        self.metrics = PrometheusMetricsManager()
        self.clock = clock
        self._lock = threading.Lock()
        self._history: deque[Alert] = deque(maxlen=history)
        self._on_alert = on_alert
        self.pipeline = Pipeline(rules, live=True, clock=clock, on_alert=self._alert)
        self.started = time.time()

    def _alert(self, alert: Alert) -> None:
        self._history.append(alert)
        self.metrics.alerts.labels(alert.status, alert.name).inc()
        if self._on_alert is not None:
            self._on_alert(alert)

    def ingest(self, batch: RawBatch) -> IngestReport:
        """Run one batch through the pipeline and record its outcome in the metrics."""
        with self._lock:
            t0 = time.perf_counter()
            outcome = self.pipeline.ingest(batch)
            elapsed = time.perf_counter() - t0
            v = outcome.validation
            self.metrics.record_validation(
                received=v.received, accepted=v.accepted, rejected=v.reason_counts, duplicates=v.duplicates
            )
            self.metrics.stage_seconds.labels("pipeline").observe(elapsed)
            self.metrics.record_metrics(outcome.processed)
            if v.watermark is not None:
                self.metrics.watermark.set(v.watermark / 1000)
                self.metrics.freshness.set(max(0.0, self.clock() - v.watermark / 1000))
            self.metrics.series.set(self.pipeline.detection.series_count)
            self.metrics.active_alerts.set(len(self.pipeline.engine.active()))
            return IngestReport(v.received, v.accepted, v.rejected_count, v.duplicates, v.messages(20))

    def active_alerts(self) -> list[Alert]:
        """Alerts firing now."""
        with self._lock:
            return self.pipeline.engine.active()

    def alert_history(self) -> list[Alert]:
        """Recent alert state changes, newest last."""
        with self._lock:
            return list(self._history)

    def status(self) -> dict[str, Any]:
        """Counters for the health endpoint and the console."""
        c = self.pipeline.counters
        return {
            "received": c.received,
            "accepted": c.accepted,
            "rejected": c.rejected,
            "duplicates": c.duplicates,
            "windows": c.windows,
            "watermark": self.pipeline.validator.watermark.value,
            "uptime_s": round(time.time() - self.started, 1),
        }
