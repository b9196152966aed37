"""Global alert deduplication: one ``SET NX PX`` per notification, so only one worker notifies.

The key is ``<prefix>:alert:<fingerprint>:<starts_at>:<status>``: the same alert state change computed by two
workers (after a failover, or a claimed entry processed twice) has the same key, and only the first ``SET NX``
succeeds. The TTL bounds how long the key is kept; it must exceed the longest redelivery delay.
"""

from __future__ import annotations

from dataclasses import dataclass

from tunewatch.alert.model import Alert
from tunewatch.distributed.connection import RedisClient
from tunewatch.distributed.keys import KeyLayout

DEFAULT_ALERT_TTL_MS = 24 * 3600 * 1000


@dataclass(slots=True)
class DedupStats:
    """Outcome of claims made by this process."""

    notified: int = 0
    deduplicated: int = 0


class AlertDeduplicator:
    """Decides, across every worker, which one sends a given alert notification."""

    def __init__(
        self, client: RedisClient, *, layout: KeyLayout | None = None, ttl_ms: int = DEFAULT_ALERT_TTL_MS,
        owner: str = "worker",
    ) -> None:  # fmt: skip
        if ttl_ms <= 0:
            raise ValueError(f"alert dedup ttl_ms: must be positive, got {ttl_ms}")
        self.client = client
        self.layout = layout or KeyLayout()
        self.ttl_ms = ttl_ms
        self.owner = owner
        self.stats = DedupStats()

    def claim(self, alert: Alert) -> bool:
        """True if this process won the right to notify ``alert`` (first ``SET NX``); counts the outcome."""
        key = self.layout.alert(alert.fingerprint, alert.starts_at, alert.status)
        won = bool(self.client.set(key, self.owner, nx=True, px=self.ttl_ms))
        if won:
            self.stats.notified += 1
        else:
            self.stats.deduplicated += 1
        return won
