"""Counters of one cache manager, snapshotted as ``dict[str, float]`` for ``PrometheusMetricsManager.record_cache``."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields


@dataclass
class CacheCounters:
    """Monotonic counters (thread-safe through :meth:`add`) and a read latency accumulator.

    >>> counters = CacheCounters()
    >>> counters.read(hits=3, misses=1, seconds=0.002)
    >>> counters.add(sets=2)
    >>> snap = counters.snapshot()
    >>> snap["hit_ratio"], snap["sets"], snap["latency"]
    (0.75, 2.0, 0.002)
    """

    hits: int = 0
    misses: int = 0
    memory_hits: int = 0
    remote_hits: int = 0
    negative_hits: int = 0
    sets: int = 0
    deletes: int = 0
    computes: int = 0
    errors: int = 0
    decode_errors: int = 0
    redis_errors: int = 0
    reconnects: int = 0
    invalidations: int = 0
    latency_sum_s: float = 0.0
    latency_count: int = 0
    latency_max_s: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **deltas: int) -> None:
        """Add ``deltas`` to the named counters atomically."""
        with self._lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)

    def read(self, hits: int, misses: int, seconds: float) -> None:
        """Account one read (single or batched) that found ``hits`` keys and missed ``misses``."""
        with self._lock:
            self.hits += hits
            self.misses += misses
            self.latency_sum_s += seconds
            self.latency_count += 1
            if seconds > self.latency_max_s:
                self.latency_max_s = seconds

    def snapshot(self) -> dict[str, float]:
        """Every counter plus ``hit_ratio`` and ``latency`` (mean seconds per read call)."""
        with self._lock:
            out = {f.name: float(getattr(self, f.name)) for f in fields(self) if not f.name.startswith("_")}
        lookups = out["hits"] + out["misses"]
        out["hit_ratio"] = out["hits"] / lookups if lookups else 0.0
        out["latency"] = out["latency_sum_s"] / out["latency_count"] if out["latency_count"] else 0.0
        return out
