"""PrometheusMetricsManager: tunewatch's own health and business KPIs, with guarded label cardinality.

Metrics are updated once per batch or window with totals, never once per event (a labelled ``inc`` costs
about a microsecond). Every label whose values come from data or configuration is guarded: rejection
reasons, queue names and alert names by first-come caps, markets by a top-N ranking with a hard cap
(see :mod:`tunewatch.monitor.cardinality`); refused values are counted under ``_other``.

Families (``_total`` is added to counters on exposition):

- pipeline health: ``tunewatch_events_received``, ``tunewatch_events{outcome}`` (accepted, rejected, duplicate:
  they add up to received, so ``sum()`` over outcomes is safe), ``tunewatch_rejections{reason}``,
  ``tunewatch_stage_duration_seconds{stage}`` (histogram), ``tunewatch_stage_errors{stage}``,
  ``tunewatch_queue_depth{queue}``, ``tunewatch_series_watched``, ``tunewatch_detectors``,
  ``tunewatch_detections{metric}``, ``tunewatch_alert_changes{status,alertname}``, ``tunewatch_alerts_active``,
  ``tunewatch_alerts_firing{alertname,severity}``, ``tunewatch_watermark_timestamp_seconds``,
  ``tunewatch_freshness_lag_seconds``, ``tunewatch_build_info``, ``process_*`` (memory, CPU, fds);
- cache: ``tunewatch_cache_*`` (:mod:`tunewatch.monitor.cache_metrics`);
- business: ``tunewatch_plays``, ``tunewatch_streams``, ... per market (:mod:`tunewatch.monitor.business`);
- what the detectors see: ``tunewatch_series_value``, ``_expected``, ``_band_lower``/``_upper``,
  ``_anomaly_score`` per watched series, capped (:mod:`tunewatch.monitor.series_metrics`).
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Final, Protocol

import polars as pl
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector

from tunewatch.clock import Clock, as_clock
from tunewatch.monitor.business import BusinessMetrics
from tunewatch.monitor.cache_metrics import CacheStatsCollector
from tunewatch.monitor.cardinality import CappedLabel
from tunewatch.monitor.series_metrics import SeriesCollector
from tunewatch.process.processor import ProcessingResult
from tunewatch.process.revenue import configured_currency
from tunewatch.version import __version__

#: Pipeline stages with a latency histogram. ``ingest`` is one whole ``Pipeline.ingest`` call (validate +
#: process + detect + alert); it is also accepted under its older name ``pipeline``.
STAGES: Final = ("ingest", "validate", "process", "detect", "alert", "notify")
_ALIASES: Final = {"pipeline": "ingest"}
#: Event outcomes counted in ``tunewatch_events_total`` (disjoint: they add up to ``tunewatch_events_received_total``).
OUTCOMES: Final = ("accepted", "rejected", "duplicate")
LATENCY_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class LabelledAlert(Protocol):
    """What :meth:`PrometheusMetricsManager.record_alerts` needs of an alert.

    >>> from tunewatch.alert.model import Alert
    >>> alert: LabelledAlert = Alert({"alertname": "FailuresUp", "severity": "critical"}, {}, "firing", 0)
    >>> alert.labels["severity"]
    'critical'
    """

    @property
    def labels(self) -> Mapping[str, str]:
        """The alert's labels (``alertname``, ``severity``, ...)."""
        ...


class StageTimer:
    """Times one ``with`` block into a histogram child; counts an exception in an error counter child.

    >>> from prometheus_client import CollectorRegistry
    >>> from prometheus_client import Counter as PromCounter
    >>> registry = CollectorRegistry()
    >>> seconds = Histogram("demo_seconds", "stage time", registry=registry)
    >>> errors = PromCounter("demo_errors", "stage errors", registry=registry)
    >>> with StageTimer(seconds, errors):
    ...     pass
    >>> registry.get_sample_value("demo_seconds_count"), registry.get_sample_value("demo_errors_total")
    (1.0, 0.0)
    """

    __slots__ = ("_errors", "_histogram", "_started")

    def __init__(self, histogram: Histogram, errors: Counter) -> None:
        self._histogram = histogram
        self._errors = errors
        self._started = 0.0

    def __enter__(self) -> StageTimer:
        self._started = time.perf_counter()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._histogram.observe(time.perf_counter() - self._started)
        if exc_type is not None and issubclass(exc_type, Exception):
            self._errors.inc()


class PrometheusMetricsManager:
    """Prometheus metrics of one tunewatch process, in a private registry unless one is given.

    >>> m = PrometheusMetricsManager()
    >>> m.record_validation(received=10, accepted=9, rejected={"market: unknown_country": 1}, duplicates=0)
    >>> with m.time_stage("validate"):
    ...     pass
    >>> b'tunewatch_events_total{outcome="accepted"} 9.0' in m.exposition()
    True
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        top_markets: int = 20,
        max_markets: int = 50,
        max_reasons: int = 100,
        max_alertnames: int = 200,
        max_queues: int = 16,
        max_series: int = 300,
        currency: str | None = None,
        clock: Clock | Callable[[], float] | None = None,
        process_metrics: bool = True,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.clock: Clock = as_clock(clock)
        r = self.registry
        self._reasons = CappedLabel(max_reasons)
        self._alertnames = CappedLabel(max_alertnames)
        self._queues = CappedLabel(max_queues)
        self._severities = CappedLabel(16)

        self.received = Counter("tunewatch_events_received", "Events received, whatever their outcome", registry=r)
        self.events = Counter(
            "tunewatch_events",
            "Events by outcome (disjoint; they add up to the events received)",
            ["outcome"],
            registry=r,
        )
        self._outcomes = {o: self.events.labels(o) for o in OUTCOMES}
        self.rejections = Counter(
            "tunewatch_rejections", "Rejection reasons (an event may have several)", ["reason"], registry=r
        )
        self.stage_seconds = Histogram(
            "tunewatch_stage_duration_seconds",
            "Time per batch in each pipeline stage",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.stage_errors = Counter(
            "tunewatch_stage_errors", "Batches whose stage raised an error", ["stage"], registry=r
        )
        self._stage_children = {s: self.stage_seconds.labels(s) for s in STAGES}
        self._error_children = {s: self.stage_errors.labels(s) for s in STAGES}
        for alias, stage in _ALIASES.items():
            self._stage_children[alias] = self._stage_children[stage]
            self._error_children[alias] = self._error_children[stage]
        self.queue_depth = Gauge("tunewatch_queue_depth", "Items waiting in each internal queue", ["queue"], registry=r)

        self.series = Gauge("tunewatch_series_watched", "Series under anomaly detection", registry=r)
        self.detectors = Gauge("tunewatch_detectors", "Detectors running (one per watched metric)", registry=r)
        self.detections = Counter("tunewatch_detections", "Points scored by the detectors", ["metric"], registry=r)
        self.alerts = Counter("tunewatch_alert_changes", "Alert state changes", ["status", "alertname"], registry=r)
        self.active_alerts = Gauge("tunewatch_alerts_active", "Alerts firing now", registry=r)
        self.firing = Gauge(
            "tunewatch_alerts_firing", "Alerts firing now by name and severity", ["alertname", "severity"], registry=r
        )
        self._firing_keys: set[tuple[str, str]] = set()

        self.watermark = Gauge(
            "tunewatch_watermark_timestamp_seconds", "Event-time watermark (unix seconds)", registry=r
        )
        self.freshness = Gauge("tunewatch_freshness_lag_seconds", "Processing time - newest event time", registry=r)
        Info("tunewatch_build", "tunewatch build information", registry=r).info({"version": __version__})

        self.cache = CacheStatsCollector()
        r.register(self.cache)
        self.business = BusinessMetrics(
            r, top_n=top_markets, max_markets=max_markets, currency=currency or configured_currency()
        )
        self.series_points = SeriesCollector(max_series=max_series)
        r.register(self.series_points)
        if process_metrics:
            ProcessCollector(registry=r)
            GCCollector(registry=r)

    # ---------------------------------------------------------------------------------------- events
    def record_validation(self, *, received: int, accepted: int, rejected: Mapping[str, int], duplicates: int) -> None:
        """Count one batch's outcomes; ``rejected`` maps reasons (``field: reason``) to counts."""
        self.received.inc(received)
        self._outcomes["accepted"].inc(accepted)
        self._outcomes["duplicate"].inc(duplicates)
        self._outcomes["rejected"].inc(max(0, received - accepted - duplicates))
        for reason, n in rejected.items():
            self.rejections.labels(self._reasons(reason)).inc(n)

    # ---------------------------------------------------------------------------------------- stages
    def observe_stage(self, stage: str, seconds: float) -> None:
        """Record that ``stage`` took ``seconds`` for one batch (``stage`` must be one of :data:`STAGES`)."""
        self._stage(stage).observe(seconds)

    def time_stage(self, stage: str) -> StageTimer:
        """Context manager timing its body as one batch of ``stage``; an exception also counts in ``stage_errors``.

        ``Pipeline(stage_timer=metrics.time_stage)`` wires every stage of a pipeline to these metrics.
        """
        return StageTimer(self._stage(stage), self._error_children[stage])

    def _stage(self, stage: str) -> Histogram:
        try:
            return self._stage_children[stage]
        except KeyError:
            raise ValueError(f"stage: unknown stage {stage!r}; expected one of {', '.join(STAGES)}") from None

    def set_queue_depth(self, queue: str, depth: int) -> None:
        """Set the number of items waiting in ``queue`` (at most ``max_queues`` names get their own label)."""
        self.queue_depth.labels(self._queues(queue)).set(depth)

    # ---------------------------------------------------------------------------------------- time
    def record_watermark(self, watermark_ms: int | None) -> None:
        """Set the watermark and the freshness lag (clock now − newest event time, never negative).

        A stalled pipeline is seen in PromQL as ``time() - tunewatch_watermark_timestamp_seconds`` growing.
        """
        if watermark_ms is None:
            return
        self.watermark.set(watermark_ms / 1000)
        self.freshness.set(max(0.0, (self.clock.now_ms() - watermark_ms) / 1000))

    # ---------------------------------------------------------------------------------------- detect / alert
    def record_detection(self, detections: pl.DataFrame | None, *, series: int, detectors: int) -> None:
        """Series under watch, detectors running, the points a detection run scored (per metric) and the newest
        point of each series (for the ``tunewatch_series_*`` gauges)."""
        self.series.set(series)
        self.detectors.set(detectors)
        if detections is None or detections.is_empty() or "metric" not in detections.columns:
            return
        self.series_points.update(detections)
        for metric, n in detections.group_by("metric").len().iter_rows():
            self.detections.labels(str(metric)).inc(n)

    def record_alert_change(self, status: str, alertname: str) -> None:
        """Count one alert state change (``firing`` or ``resolved``)."""
        self.alerts.labels(status, self._alertnames(alertname)).inc()

    def record_alerts(self, active: Iterable[LabelledAlert]) -> None:
        """Set the firing gauges from the alerts firing now (by ``alertname`` and ``severity``); their series are
        exported first by the ``tunewatch_series_*`` gauges."""
        active = list(active)
        self.series_points.set_alerting(a.labels for a in active)
        tally = Tally(
            (self._alertnames(a.labels.get("alertname", "")), self._severities(a.labels.get("severity", "none")))
            for a in active
        )
        for key, n in tally.items():
            self.firing.labels(*key).set(n)
        for key in self._firing_keys - set(tally):
            self.firing.labels(*key).set(0)
        self._firing_keys |= set(tally)
        self.active_alerts.set(sum(tally.values()))

    # ---------------------------------------------------------------------------------------- business / cache
    def record_metrics(self, result: ProcessingResult) -> None:
        """Export the closed windows' business metrics per market (counters and newest-window gauges)."""
        self.business.record(result)

    def record_cache(self, stats: Mapping[str, float]) -> None:
        """Export a cache statistics snapshot (``MusicStreamingCacheManager.stats()``)."""
        self.cache.record(stats)

    def watch_cache(self, source: Callable[[], Mapping[str, float]]) -> None:
        """Pull cache statistics from ``source`` (e.g. ``cache.stats``) on every scrape instead."""
        self.cache.source = source

    # ---------------------------------------------------------------------------------------- exposition
    def exposition(self) -> bytes:
        """The registry in Prometheus text format (what ``/metrics`` serves)."""
        return generate_latest(self.registry)
