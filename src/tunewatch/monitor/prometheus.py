"""PrometheusMetricsManager: exports pipeline health and business KPIs with guarded label cardinality.

Metrics are updated once per batch or window with totals (never once per event). Business gauges are
labelled only by ``market`` (and global), capped at ``max_markets`` label values; further markets are
folded into ``market="_other"`` so that a hostile stream cannot explode the series count.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from tunewatch.process.processor import ProcessingResult

_BUSINESS = ("plays", "streams", "skip_rate", "failure_rate", "est_revenue_micros", "unique_listeners")


class PrometheusMetricsManager:
    """Prometheus metrics of one tunewatch process (a private registry unless one is given).

    >>> m = PrometheusMetricsManager()
    >>> m.record_validation(received=10, accepted=9, rejected={"market: unknown_country": 1}, duplicates=0)
    >>> b"tunewatch_events_total" in m.exposition()
    True
    """

    def __init__(self, registry: CollectorRegistry | None = None, *, max_markets: int = 100) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.max_markets = max_markets
        self._markets: set[str] = set()
        r = self.registry
        self.events = Counter("tunewatch_events", "Events by outcome", ["outcome"], registry=r)
        self.rejections = Counter("tunewatch_rejections", "Rejected events by reason", ["reason"], registry=r)
        self.windows = Counter("tunewatch_windows_closed", "1-minute windows closed", registry=r)
        self.alerts = Counter("tunewatch_alert_changes", "Alert state changes", ["status", "alertname"], registry=r)
        self.stage_seconds = Histogram(
            "tunewatch_stage_seconds",
            "Time spent per batch in each stage",
            ["stage"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.business = Gauge(
            "tunewatch_business_metric", "Latest closed window's business metrics", ["metric", "market"], registry=r
        )
        self.watermark = Gauge("tunewatch_watermark_seconds", "Event-time watermark (unix seconds)", registry=r)
        self.freshness = Gauge("tunewatch_freshness_lag_seconds", "Processing time - newest event time", registry=r)
        self.series = Gauge("tunewatch_series_watched", "Series under anomaly detection", registry=r)
        self.active_alerts = Gauge("tunewatch_alerts_active", "Alerts firing now", registry=r)
        self.cache = Gauge("tunewatch_cache", "Cache statistics", ["stat"], registry=r)

    def record_validation(self, *, received: int, accepted: int, rejected: Mapping[str, int], duplicates: int) -> None:
        """Count one batch's outcomes (rejections by reason; an event may have several reasons)."""
        self.events.labels("received").inc(received)
        self.events.labels("accepted").inc(accepted)
        self.events.labels("duplicate").inc(duplicates)
        self.events.labels("rejected").inc(max(0, received - accepted - duplicates))
        for reason, n in rejected.items():
            self.rejections.labels(reason).inc(n)

    def record_metrics(self, result: ProcessingResult) -> None:
        """Export the newest closed window's business metrics, globally and per market."""
        if not result.windows:
            return
        self.windows.inc(len(result.windows))
        latest = result.metrics.filter(pl.col("window_start") == result.windows[-1])
        rows = latest.filter(pl.col("dimset").is_in(["global", "market"])).select(
            pl.col("market").fill_null("_all"), *_BUSINESS
        )
        for row in rows.iter_rows(named=True):
            market = self._market_label(row["market"])
            for name in _BUSINESS:
                value = row[name]
                if value is not None:
                    self.business.labels(name, market).set(float(value))

    def record_cache(self, stats: Mapping[str, float]) -> None:
        """Export a cache statistics snapshot (hits, misses, hit_ratio, evictions, bytes ...)."""
        for key, value in stats.items():
            if isinstance(value, int | float):
                self.cache.labels(key).set(float(value))

    def _market_label(self, market: str) -> str:
        if market in self._markets or market == "_all":
            return market
        if len(self._markets) < self.max_markets:
            self._markets.add(market)
            return market
        return "_other"

    def exposition(self) -> bytes:
        """The registry in Prometheus text format (what ``/metrics`` serves)."""
        return generate_latest(self.registry)
