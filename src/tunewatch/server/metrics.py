"""The HTTP service's own Prometheus metrics (beside the pipeline's, in the same registry)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class ServerMetrics:
    """Counters of the service's safety valves: rate-limit storage fallbacks, quarantine overflow."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.fallbacks = Counter(
            "tunewatch_rate_limit_storage_fallbacks",
            "Rate-limit decisions taken in memory because the shared storage failed or timed out",
            registry=registry,
        )
        self.overflow = Counter(
            "tunewatch_quarantine_overflow_events",
            "Rejected events summarised in one quarantine row per request instead of kept one by one",
            registry=registry,
        )
        self.audit_failures = Counter(
            "tunewatch_audit_failures", "Administrative actions that could not be recorded in the audit trail",
            registry=registry,
        )  # fmt: skip

    def rate_limit_fallback(self) -> None:
        """Count one decision taken by the in-memory limits."""
        self.fallbacks.inc()

    def quarantine_overflow(self, events: int) -> None:
        """Count rejected events left out of the quarantine's individual rows."""
        if events > 0:
            self.overflow.inc(events)
