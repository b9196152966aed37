"""Recent detection results (value, expected, band, score per window) kept per series for charts."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping
from typing import Any

import polars as pl

from tunewatch.schema import DIMENSION_FIELDS

WINDOW_MS = 60_000
POINT_COLUMNS = ("window_start", "value", "expected", "lower", "upper", "score")


class SeriesStore:
    """Keeps the detection frames of the last ``windows`` windows (memory only; the pipeline recomputes them)."""

    def __init__(self, windows: int = 6 * 60) -> None:
        self._frames: deque[pl.DataFrame] = deque()
        self._span_ms = windows * WINDOW_MS
        self._lock = threading.Lock()

    def add(self, detections: pl.DataFrame) -> None:
        """Append one batch's detections and forget windows older than the span."""
        if detections.is_empty():
            return
        with self._lock:
            self._frames.append(detections.select("metric", *DIMENSION_FIELDS, *POINT_COLUMNS))
            newest = int(detections.get_column("window_start").max())  # type: ignore[arg-type]
            while self._frames and int(self._frames[0].get_column("window_start").max()) < newest - self._span_ms:  # type: ignore[arg-type]
                self._frames.popleft()

    def _all(self) -> pl.DataFrame | None:
        with self._lock:
            frames = list(self._frames)
        return pl.concat(frames, how="vertical_relaxed") if frames else None

    def catalog(self, limit: int = 500) -> list[dict[str, Any]]:
        """Series seen in the newest window: metric and dimension values (non-null only), at most ``limit``."""
        with self._lock:
            newest = self._frames[-1] if self._frames else None
        if newest is None:
            return []
        last = newest.filter(pl.col("window_start") == pl.col("window_start").max())
        keys = last.select("metric", *DIMENSION_FIELDS).unique(maintain_order=True).head(limit)
        return [
            {"metric": row["metric"], "dims": {k: v for k, v in row.items() if k != "metric" and v is not None}}
            for row in keys.to_dicts()
        ]

    def points(self, metric: str, dims: Mapping[str, str]) -> list[dict[str, Any]]:
        """Points of one series (``dims`` gives every dimension that is set; the others are unset), oldest first."""
        frame = self._all()
        if frame is None:
            return []
        cond = pl.col("metric") == metric
        for f in DIMENSION_FIELDS:
            cond &= (pl.col(f) == dims[f]) if f in dims else pl.col(f).is_null()
        rows = frame.filter(cond).select(POINT_COLUMNS).unique("window_start", keep="last").sort("window_start")
        return rows.to_dicts()
