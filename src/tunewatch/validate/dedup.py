"""Exact duplicate detection by ``event_id`` within an event-time horizon (memory-bounded, no false positives)."""

from __future__ import annotations

import polars as pl

DEFAULT_DEDUP_HORIZON_MS = 60 * 60 * 1000


class DuplicateFilter:
    """Remembers the ids of accepted events whose time is within ``horizon_ms`` of the watermark.

    Memory is bounded by the number of events in the horizon. Ids are compared exactly (strings), so a
    distinct event is never taken for a duplicate. A repeat of an id older than the horizon is no longer
    recognised, but such an event is also older than the allowed lateness and is rejected as late.
    """

    def __init__(self, horizon_ms: int = DEFAULT_DEDUP_HORIZON_MS) -> None:
        self.horizon_ms = horizon_ms
        self._seen = pl.DataFrame(schema={"event_id": pl.String, "ts": pl.Int64})
        self._pending: list[pl.DataFrame] = []
        self._pending_rows = 0

    def duplicate_mask(self, ids: pl.Series) -> pl.Series:
        """True for ids seen before (in an earlier batch or earlier in this one)."""
        frame = pl.DataFrame({"event_id": ids})
        repeat_in_batch = ~frame.get_column("event_id").is_first_distinct()
        self._compact()
        if not self._seen.height:
            return repeat_in_batch
        return repeat_in_batch | frame.get_column("event_id").is_in(self._seen.get_column("event_id").implode())

    def remember(self, ids: pl.Series, ts: pl.Series) -> None:
        """Record accepted events."""
        if len(ids):
            self._pending.append(pl.DataFrame({"event_id": ids, "ts": ts}))
            self._pending_rows += len(ids)

    def evict(self, watermark: int | None) -> None:
        """Forget ids whose time is older than ``watermark - horizon``."""
        self._compact()
        if watermark is not None and self._seen.height:
            self._seen = self._seen.filter(pl.col("ts") >= watermark - self.horizon_ms)

    def __len__(self) -> int:
        return self._seen.height + self._pending_rows

    def _compact(self) -> None:
        if self._pending:
            self._seen = pl.concat([self._seen, *self._pending], rechunk=True)
            self._pending.clear()
            self._pending_rows = 0
