"""Metric history: closed windows of the metric frame kept as Parquet, one folder per UTC day, with retention.

Layout: ``<root>/day=YYYY-MM-DD/<first window>-<last window>-<n>.parquet`` (Hive-style partitions, readable by
Polars, DuckDB, Spark). Each :meth:`MetricHistory.append` writes one file for each day it touches; queries
scan the partitions lazily and prune by day; :meth:`MetricHistory.cleanup` drops whole days older than the
retention (30 days by default).
"""

from __future__ import annotations

import shutil
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Final

import polars as pl

from tunewatch.schema import DIMENSION_FIELDS

DAY_MS: Final = 86_400_000
DEFAULT_RETENTION_DAYS: Final = 30


def _day(ms: int) -> date:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).date()


class MetricHistory:
    """Appends metric frames (``window_start``, ``dimset``, dimensions, metrics) to day partitions."""

    def __init__(self, root: str | Path, *, retention_days: int = DEFAULT_RETENTION_DAYS) -> None:
        if retention_days < 1:
            raise ValueError("retention_days must be at least 1")
        self.root = Path(root)
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.retention_days = retention_days
        self._lock = threading.Lock()
        self._seq = 0

    def append(self, metrics: pl.DataFrame) -> int:
        """Write the rows of ``metrics`` (one file per UTC day they cover); return the rows written."""
        if metrics.is_empty():
            return 0
        frame = metrics.with_columns((pl.col("window_start") // DAY_MS).alias("_day"))
        with self._lock:
            for (day_no,), part in frame.group_by("_day"):
                folder = self.root / f"day={_day(int(day_no) * DAY_MS).isoformat()}"
                folder.mkdir(mode=0o700, exist_ok=True)
                first = int(part.get_column("window_start").min())  # type: ignore[arg-type]
                last = int(part.get_column("window_start").max())  # type: ignore[arg-type]
                self._seq += 1
                target = folder / f"{first}-{last}-{self._seq}.parquet"
                tmp = target.with_suffix(".tmp")
                part.drop("_day").write_parquet(tmp, compression="zstd")
                tmp.chmod(0o600)  # private, as the database is
                tmp.replace(target)  # readers never see a half-written file
        return metrics.height

    def newest_window(self) -> int | None:
        """The newest ``window_start`` written (from the file names of the newest day), or None."""
        days = sorted(p for p in self.root.glob("day=*") if p.is_dir())
        for folder in reversed(days):
            ends = [int(p.stem.split("-")[1]) for p in folder.glob("*.parquet") if p.stem.count("-") == 2]
            if ends:
                return max(ends)
        return None

    def query(
        self,
        metric: str,
        *,
        dimset: str = "global",
        dims: dict[str, str] | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
    ) -> pl.DataFrame:
        """``window_start`` and ``value`` of one series between ``since_ms`` and ``until_ms`` (inclusive)."""
        files = self._files(since_ms, until_ms)
        if not files:
            return pl.DataFrame(schema={"window_start": pl.Int64, "value": pl.Float64})
        lazy = pl.scan_parquet(files).filter(pl.col("dimset") == dimset)
        for field in DIMENSION_FIELDS:
            value = (dims or {}).get(field)
            lazy = lazy.filter(pl.col(field) == value) if value is not None else lazy
        if since_ms is not None:
            lazy = lazy.filter(pl.col("window_start") >= since_ms)
        if until_ms is not None:
            lazy = lazy.filter(pl.col("window_start") <= until_ms)
        if metric not in lazy.collect_schema().names():
            raise KeyError(f"unknown metric {metric!r}")
        return lazy.select("window_start", pl.col(metric).alias("value")).sort("window_start").collect()

    def days(self) -> list[date]:
        """The days held, oldest first."""
        return sorted(date.fromisoformat(p.name.removeprefix("day=")) for p in self.root.glob("day=*") if p.is_dir())

    def cleanup(self, now_ms: int) -> list[date]:
        """Delete the days older than the retention, counted back from ``now_ms``; return them."""
        oldest_kept = _day(now_ms) - timedelta(days=self.retention_days - 1)
        dropped = [d for d in self.days() if d < oldest_kept]
        with self._lock:
            for d in dropped:
                shutil.rmtree(self.root / f"day={d.isoformat()}", ignore_errors=True)
        return dropped

    def _files(self, since_ms: int | None, until_ms: int | None) -> list[Path]:
        lo = _day(since_ms) if since_ms is not None else date.min
        hi = _day(until_ms) if until_ms is not None else date.max
        return sorted(f for d in self.days() if lo <= d <= hi for f in (self.root / f"day={d}").glob("*.parquet"))
