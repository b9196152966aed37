"""Cache statistics as Prometheus metrics: a collector over ``MusicStreamingCacheManager.stats()`` snapshots.

The cache keeps its own monotonic counters; this collector turns a snapshot into proper families at scrape
time (counters stay counters, ratios and sizes are gauges, read latency is a summary), either from the last
snapshot handed to :meth:`CacheStatsCollector.record` or by pulling a live ``source`` on every scrape.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Final

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily
from prometheus_client.registry import Collector

from tunewatch.monitor.cardinality import CappedLabel

#: snapshot key → (metric name without ``_total``, help) for monotonic counters.
CACHE_COUNTERS: Final = {
    "hits": ("tunewatch_cache_hits", "Cache lookups that found a value"),
    "misses": ("tunewatch_cache_misses", "Cache lookups that found nothing"),
    "evictions": ("tunewatch_cache_evictions", "Entries evicted from the in-memory tier"),
    "expired": ("tunewatch_cache_expired", "Entries dropped from the in-memory tier after their TTL"),
    "errors": ("tunewatch_cache_errors", "Cache operations that failed"),
    "redis_errors": ("tunewatch_cache_redis_errors", "Redis calls that failed"),
    "sets": ("tunewatch_cache_sets", "Values written to the cache"),
    "invalidations": ("tunewatch_cache_invalidations", "Keys invalidated"),
    "memory_hits": ("tunewatch_cache_memory_hits", "Lookups answered by the in-memory tier"),
    "remote_hits": ("tunewatch_cache_remote_hits", "Lookups answered by the Redis tier"),
    "negative_hits": ("tunewatch_cache_negative_hits", "Lookups answered by a cached 'nothing here'"),
    "deletes": ("tunewatch_cache_deletes", "Keys deleted"),
    "computes": ("tunewatch_cache_computes", "Values computed on a miss (get_or_compute)"),
    "decode_errors": ("tunewatch_cache_decode_errors", "Cached values that could not be decoded"),
    "reconnects": ("tunewatch_cache_reconnects", "Reconnections to Redis"),
}
#: snapshot key → (metric name, help) for gauges.
CACHE_GAUGES: Final = {
    "hit_ratio": ("tunewatch_cache_hit_ratio", "hits / (hits + misses) since start"),
    "bytes": ("tunewatch_cache_bytes", "Bytes held by the in-memory tier"),
    "entries": ("tunewatch_cache_entries", "Entries held by the in-memory tier"),
    "redis_up": ("tunewatch_cache_redis_up", "1 when the Redis tier answers, else 0"),
    "latency_max_s": ("tunewatch_cache_read_max_seconds", "Slowest cache read since start"),
}
_SUMMARY_KEYS: Final = ("latency_count", "latency_sum_s")
_DERIVED: Final = ("latency",)  # mean latency: derivable from the summary, not exported twice


class CacheStatsCollector(Collector):
    """Exports the newest cache statistics snapshot; other numeric keys (the cache's counters are monotonic) go to
    the counter family ``tunewatch_cache_other_total{stat}``, at most ``max_other`` names.

    >>> from prometheus_client import CollectorRegistry, generate_latest
    >>> registry = CollectorRegistry()
    >>> collector = CacheStatsCollector()
    >>> registry.register(collector)
    >>> collector.record({"hits": 9, "misses": 1, "hit_ratio": 0.9})
    >>> b"tunewatch_cache_hit_ratio 0.9" in generate_latest(registry)
    True
    """

    def __init__(self, source: Callable[[], Mapping[str, float]] | None = None, *, max_other: int = 32) -> None:
        self.source = source
        self._snapshot: dict[str, float] = {}
        self._lock = threading.Lock()
        self._other = CappedLabel(max_other)

    def record(self, stats: Mapping[str, float]) -> None:
        """Keep ``stats`` (a ``stats()`` snapshot) for the next scrape; non-numeric values are ignored."""
        clean = {k: float(v) for k, v in stats.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        with self._lock:
            self._snapshot = clean

    def _current(self) -> dict[str, float]:
        if self.source is not None:
            self.record(self.source())
        with self._lock:
            return dict(self._snapshot)

    def collect(self) -> Iterator[Metric]:
        """Families for the current snapshot (nothing before the first snapshot)."""
        stats = self._current()
        if not stats:
            return
        for key, (name, doc) in CACHE_COUNTERS.items():
            if key in stats:
                yield CounterMetricFamily(name, doc, value=max(0.0, stats[key]))
        for key, (name, doc) in CACHE_GAUGES.items():
            if key in stats:
                yield GaugeMetricFamily(name, doc, value=stats[key])
        if all(k in stats for k in _SUMMARY_KEYS):
            yield SummaryMetricFamily(
                "tunewatch_cache_read_seconds",
                "Cache read calls (single or batched) and their total time",
                count_value=int(stats["latency_count"]),
                sum_value=stats["latency_sum_s"],
            )
        known = {*CACHE_COUNTERS, *CACHE_GAUGES, *_SUMMARY_KEYS, *_DERIVED}
        other = CounterMetricFamily("tunewatch_cache_other", "Other cache counters by name", labels=["stat"])
        for key in sorted(set(stats) - known):
            label = self._other(key)
            if label == key:
                other.add_metric([key], max(0.0, stats[key]))
        if other.samples:
            yield other

    def describe(self) -> Iterator[Metric]:
        """Nothing up front: the families depend on the snapshot (avoids a source call at registration)."""
        return iter(())
