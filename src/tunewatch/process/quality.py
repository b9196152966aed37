"""Data-quality KPIs per 1-minute window: received, rejected, duplicates, undecodable, freshness lag.

Every event a batch received is booked to a window: accepted ones to the window of their event time;
rejected ones to the window of their ``ts`` when the validator could read it, otherwise — like duplicates —
spread over the batch's windows in proportion to its accepted events (the rows of a batch arrived together).
The KPIs join the ``global`` rows of the metric frame:

* ``validation_success_rate`` = accepted / received (alert under 99.5 % by default),
* ``error_rate`` = undecodable lines (not JSON/CSV, bad UTF-8, too long or deep) / received (alert over 0.1 %),
* ``duplicate_rate`` = duplicates / received,
* ``freshness_lag_s`` = processing time − newest event time, in live mode (largest lag seen in the window).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any, Final

import numpy as np
import polars as pl

from tunewatch.validate.validator import ValidationResult

WINDOW_MS: Final = 60_000
#: Reasons whose field names a whole input line or row: the input could not be decoded at all.
UNDECODABLE_FIELDS: Final = ("line", "row")
QUALITY_COLUMNS: Final = (
    "events_received",
    "events_rejected",
    "duplicates",
    "undecodable",
    "validation_success_rate",
    "error_rate",
    "duplicate_rate",
    "freshness_lag_s",
)


class QualityLedger:
    """Books each batch's outcomes to windows; hands out the KPIs of windows as they close.

    >>> from tunewatch.validate import EnterpriseDataValidator
    >>> ledger = QualityLedger()
    >>> ad = {"event_id": "e1", "ts": 1_699_999_980_000, "event_type": "ad", "user_id": "u1", "market": "SE",
    ...       "platform": "web", "tier": "free", "ad_revenue_micros": 1200}
    >>> ledger.record(EnterpriseDataValidator().validate([ad, {**ad, "event_id": "e2", "market": "??"}]))
    >>> ledger.take(None).select("window_start", "events_received", "events_rejected").rows()
    [(1699999980000, 2.0, 1.0)]
    """

    def __init__(self) -> None:
        # window_start -> [received, rejected, duplicates, undecodable]
        self._counts: dict[int, np.ndarray] = defaultdict(lambda: np.zeros(4))
        self._lag: dict[int, float] = {}
        self._watermark: int | None = None  # newest watermark seen (a batch of only bad lines has none)

    def record(self, result: ValidationResult, *, open_from: int | None = None, now_s: float | None = None) -> None:
        """Book one validated batch.

        ``open_from``: the first window still open; a rejected event whose own window has closed (a late one)
        is booked to the watermark's window, when its problem was seen. ``now_s`` (wall clock, live mode)
        gives the freshness lag.
        """
        if result.received == 0:
            return
        accepted = self._per_window(result.valid)
        newest = result.watermark
        if newest is None and accepted:  # the robust watermark needs a few events; the accepted ones will do
            newest = max(accepted)
        if newest is not None:
            self._watermark = max(newest, self._watermark or newest)
        fallback = self._watermark
        weights = accepted if accepted else ({_window(fallback): 1.0} if fallback is not None else {})
        total = sum(weights.values())
        for w, n in accepted.items():
            self._counts[w][0] += n
        rejected = result.rejected
        undecodable = (
            rejected.select(
                pl.col("reasons")
                .list.eval(pl.element().str.split(":").list.first().is_in(UNDECODABLE_FIELDS))
                .list.any()
            ).to_series()
            if rejected.height
            else pl.Series([], dtype=pl.Boolean)
        )
        spread_rej, spread_undec = float(rejected.height), float(undecodable.sum() or 0)
        if rejected.height and "ts" in rejected.columns:
            known = rejected.with_columns(undecodable.alias("_u")).filter(pl.col("ts").is_not_null())
            window = pl.col("ts") // WINDOW_MS * WINDOW_MS
            if open_from is not None and fallback is not None:
                window = pl.when(window < open_from).then(pl.lit(_window(fallback))).otherwise(window)
            by = known.group_by(window.alias("w")).agg(pl.len().alias("n"), pl.col("_u").sum().alias("u"))
            for w, n, u in by.iter_rows():
                c = self._counts[int(w)]
                c[0] += n
                c[1] += n
                c[3] += u
            spread_rej -= known.height
            spread_undec -= float(known.get_column("_u").sum() or 0)
        if total > 0:
            for w, share in weights.items():
                f = share / total
                c = self._counts[w]
                c[0] += f * (spread_rej + result.duplicates)
                c[1] += f * spread_rej
                c[2] += f * result.duplicates
                c[3] += f * spread_undec
        if now_s is not None and result.watermark is not None:
            w = _window(result.watermark)
            self._lag[w] = max(self._lag.get(w, 0.0), now_s - result.watermark / 1000)

    def take(self, before: int | None) -> pl.DataFrame:
        """KPI rows (``window_start`` + :data:`QUALITY_COLUMNS`) of every window starting before ``before``
        (all when None), which are forgotten."""
        windows = sorted(w for w in self._counts if before is None or w < before)
        rows = []
        for w in windows:
            received, rejected, dups, undec = (float(x) for x in self._counts.pop(w))
            rows.append(
                {
                    "window_start": w,
                    "events_received": received,
                    "events_rejected": rejected,
                    "duplicates": dups,
                    "undecodable": undec,
                    "validation_success_rate": (received - rejected - dups) / received if received else None,
                    "error_rate": undec / received if received else None,
                    "duplicate_rate": dups / received if received else None,
                    "freshness_lag_s": self._lag.pop(w, None),
                }
            )
        for w in [w for w in self._lag if before is None or w < before]:
            del self._lag[w]
        schema = {"window_start": pl.Int64, **{c: pl.Float64 for c in QUALITY_COLUMNS}}
        return pl.DataFrame(rows, schema=schema)

    def state_dict(self) -> dict[str, Any]:
        """Counts of the windows not yet handed out, their freshness lags and the newest watermark (NumPy).

        Part of :meth:`MusicDataProcessor.state_dict`, whose layout version covers it.
        """
        windows = sorted(self._counts)
        lags = sorted(self._lag)
        return {
            "windows": np.asarray(windows, dtype=np.int64),
            "counts": np.array([self._counts[w] for w in windows], dtype=np.float64).reshape(len(windows), 4),
            "lag_windows": np.asarray(lags, dtype=np.int64),
            "lags": np.asarray([self._lag[w] for w in lags], dtype=np.float64),
            "watermark": self._watermark,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume from :meth:`state_dict` (``ValueError`` when the arrays do not fit together)."""
        windows, counts = np.asarray(state["windows"]), np.asarray(state["counts"])
        lag_windows, lags = np.asarray(state["lag_windows"]), np.asarray(state["lags"])
        if counts.shape != (windows.size, 4) or lags.shape != lag_windows.shape:
            raise ValueError(f"quality state: counts {counts.shape} do not fit {windows.size} windows")
        self._counts.clear()
        for w, row in zip(windows.tolist(), counts, strict=True):
            self._counts[int(w)] = row.astype(np.float64).copy()
        self._lag = {int(w): float(x) for w, x in zip(lag_windows.tolist(), lags.tolist(), strict=True)}
        self._watermark = None if state["watermark"] is None else int(state["watermark"])

    @staticmethod
    def _per_window(valid: pl.DataFrame) -> dict[int, float]:
        """Accepted events per window of their event time (one NumPy pass: a Polars group-by on the thread pool
        cost more than the counting for a batch's few hundred windows)."""
        if valid.is_empty():
            return {}
        ts = valid.get_column("ts").to_numpy()  # accepted events all have their (Int64, epoch-ms) time
        windows, counts = np.unique(ts // WINDOW_MS * WINDOW_MS, return_counts=True)
        return dict(zip(windows.tolist(), map(float, counts.tolist()), strict=True))


def _window(ts_ms: int) -> int:
    return int(ts_ms) // WINDOW_MS * WINDOW_MS
