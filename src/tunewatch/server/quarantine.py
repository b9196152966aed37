"""A bounded in-memory ring of the most recent rejected events (for ``/api/v1/quarantine`` and the console)."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

import polars as pl

RAW_PREVIEW_BYTES = 2048


class QuarantineRing:
    """Keeps the last ``size`` rejected events with their reasons and (truncated) raw bytes."""

    def __init__(self, size: int = 1000) -> None:
        self._items: deque[dict[str, Any]] = deque(maxlen=size)
        self._lock = threading.Lock()
        self.total = 0

    def add(
        self, rejected: pl.DataFrame, locate: Callable[[int], dict[str, Any]] | None = None, *, omitted: int = 0
    ) -> None:
        """Take one batch's rejected rows (``REJECTED_SCHEMA``); only the newest ``size`` are converted.

        ``locate`` maps a row's ``line_no`` to extra fields (which request, which line or index in it);
        ``omitted`` rejected events were summarised rather than given (they count in :attr:`total`).
        """
        self.total += rejected.height + omitted
        size = self._items.maxlen or 0
        if size == 0 or rejected.is_empty():
            return
        rows = rejected.tail(size).with_columns(pl.col("raw").bin.slice(0, RAW_PREVIEW_BYTES)).to_dicts()
        for row in rows:  # bounded by the ring size, not by the batch
            row["raw"] = bytes(row["raw"] or b"").decode("utf-8", "replace")
            if locate is not None and row["line_no"] is not None:
                row.update(locate(int(row["line_no"])))
        with self._lock:
            self._items.extend(rows)

    def recent(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest ``limit`` rejected events, newest first."""
        with self._lock:
            items = list(self._items)[-limit:] if limit > 0 else []
        return items[::-1]
