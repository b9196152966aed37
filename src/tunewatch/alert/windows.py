"""Conditions that look back in time: rate of change and SLO burn rate, vectorised over series and windows.

Each stateful rule keeps the last ``depth`` windows of its series as a dense ``(channels, depth, series)``
matrix. A batch of windows is laid out the same way and appended, and the condition of every (window, series)
cell is computed at once with array arithmetic (shifts and cumulative sums), with no Python loop over points.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import numpy as np
import polars as pl

from tunewatch.alert.rules import Rule
from tunewatch.process.catalogue import METRICS

WINDOW_MS: Final = 60_000


class SeriesHistory:
    """The last ``depth`` one-minute windows of ``channels`` per-series columns.

    >>> h = SeriesHistory(depth=2, channels=1, fill=0.0)
    >>> rows = pl.DataFrame({"window_start": [0, 60_000, 120_000], "sid": [0, 0, 1]})
    >>> full, first = h.extend(np.array([0, 60_000, 120_000]), rows, [np.array([1.0, 2.0, 3.0])])
    >>> full[0].tolist()  # two kept windows (empty so far), then the batch; one column per series
    [[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [0.0, 3.0]]
    >>> h.buf[0].tolist()
    [[2.0, 0.0], [0.0, 3.0]]
    """

    def __init__(self, depth: int, channels: int, fill: float) -> None:
        self.depth = depth
        self.fill = fill
        self.buf = np.full((channels, depth, 0), fill, dtype=np.float64)
        self.next_window: int | None = None

    def extend(self, windows: np.ndarray, rows: pl.DataFrame, columns: list[np.ndarray]) -> tuple[np.ndarray, int]:
        """Append the batch's windows; return ``(full matrix, first batch window)``.

        ``full`` is ``(channels, depth + span, series)``: the kept history then one row per batch window
        (``span`` consecutive minutes from the first batch window). Missing cells hold ``fill``.
        """
        first, last = int(windows[0]), int(windows[-1])
        span = (last - first) // WINDOW_MS + 1
        sids = rows.get_column("sid").to_numpy().astype(np.int64)
        n = max(self.buf.shape[2], int(sids.max()) + 1 if sids.size else 0)
        hist = self.buf
        if hist.shape[2] < n:
            grow = np.full((hist.shape[0], self.depth, n - hist.shape[2]), self.fill)
            hist = np.concatenate([hist, grow], axis=2)
        if self.next_window is not None and first > self.next_window:  # a gap since the last batch
            gap = min(self.depth, (first - self.next_window) // WINDOW_MS)
            hist = np.concatenate([hist[:, gap:, :], np.full((hist.shape[0], gap, n), self.fill)], axis=1)
        batch = np.full((hist.shape[0], span, n), self.fill)
        idx = (rows.get_column("window_start").to_numpy() - first) // WINDOW_MS
        for ch, col in enumerate(columns):
            batch[ch, idx, sids] = col
        full = np.concatenate([hist, batch], axis=1)
        self.buf = full[:, -self.depth :, :].copy()
        self.next_window = last + WINDOW_MS
        return full, first

    def state_dict(self) -> dict[str, Any]:
        """The kept windows and the next expected window start (plain values and one NumPy array)."""
        return {"buf": self.buf.copy(), "next_window": self.next_window}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume from :meth:`state_dict`; raises ``ValueError`` naming the field when it does not fit."""
        buf = state.get("buf")
        if not isinstance(buf, np.ndarray) or buf.ndim != 3 or buf.shape[:2] != self.buf.shape[:2]:
            shape = buf.shape if isinstance(buf, np.ndarray) else type(buf).__name__
            raise ValueError(f"history 'buf': expected (channels, depth) {self.buf.shape[:2]}, got {shape}")
        nxt = state.get("next_window")
        if nxt is not None and (not isinstance(nxt, int) or isinstance(nxt, bool)):
            raise ValueError(f"history 'next_window': expected an int or None, got {type(nxt).__name__}")
        self.buf = buf.astype(np.float64, copy=True)
        self.next_window = nxt


def _cell(rows: pl.DataFrame, first: int, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """Row positions in the full matrix: (window index, series id) of every detection row."""
    k = depth + (rows.get_column("window_start").to_numpy() - first) // WINDOW_MS
    return k.astype(np.int64), rows.get_column("sid").to_numpy().astype(np.int64)


class RateOfChange:
    """Relative change of a series' value against its value ``change_over`` earlier.

    >>> from tunewatch.alert.rules import Rule
    >>> roc = RateOfChange(Rule.model_validate({"alert": "Drop", "kind": "rate_of_change", "metric": "plays",
    ...                                         "change_over": "2m", "min_change": 0.5, "direction": "down"}))
    >>> rows = pl.DataFrame({"window_start": [0, 60_000, 120_000], "sid": [0, 0, 0], "value": [100.0, 90.0, 40.0],
    ...                      "weight": [1.0, 1.0, 1.0]})
    >>> roc.evaluate(rows, np.array([0, 60_000, 120_000])).get_column("__cond").to_list()
    [False, False, True]
    """

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.lag = rule.history_windows
        self.history = SeriesHistory(self.lag, 1, np.nan)

    def evaluate(self, rows: pl.DataFrame, windows: np.ndarray) -> pl.DataFrame:
        """``rows`` plus ``__cond``, ``__base`` (value ``change_over`` earlier) and ``__change`` (relative)."""
        values = rows.get_column("value").fill_null(np.nan).to_numpy().astype(np.float64)
        full, first = self.history.extend(windows, rows, [values])
        k, sid = _cell(rows, first, self.lag)
        base = full[0, k - self.lag, sid]
        with np.errstate(divide="ignore", invalid="ignore"):
            change = np.where((base > 0) & (base >= self.rule.min_base), (values - base) / base, np.nan)
        direction = self.rule.effective_direction
        up, down = change >= self.rule.min_change, -change >= self.rule.min_change
        moved = up if direction == "up" else down if direction == "down" else up | down
        weight = rows.get_column("weight").fill_null(0.0).to_numpy()
        cond = moved & np.isfinite(change) & (weight >= self.rule.min_weight)
        return rows.with_columns(
            pl.Series("__cond", cond), pl.Series("__base", base).fill_nan(None), pl.Series("__change", change)
        )


class BurnRate:
    """Multi-window, multi-burn-rate SLO condition over a ratio metric weighted by its denominator.

    >>> from tunewatch.alert.rules import Rule
    >>> burn = BurnRate(Rule.model_validate({"alert": "Budget", "kind": "slo_burn_rate", "metric": "failure_rate",
    ...                                      "objective": 0.99, "burn_windows": [{"long": "2m", "short": "1m",
    ...                                                                           "factor": 2}]}))
    >>> rows = pl.DataFrame({"window_start": [0, 60_000], "sid": [0, 0], "value": [0.10, 0.10],
    ...                      "weight": [100.0, 100.0]})
    >>> burn.evaluate(rows, np.array([0, 60_000])).get_column("__cond").to_list()
    [True, True]
    """

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.depth = rule.history_windows
        self.history = SeriesHistory(self.depth, 2, 0.0)
        self.bad_up = METRICS[rule.metric].bad == "up"

    def evaluate(self, rows: pl.DataFrame, windows: np.ndarray) -> pl.DataFrame:
        """``rows`` plus ``__cond``, the long-window error ratio and the burn rates of the decisive pair."""
        value = rows.get_column("value").fill_null(np.nan).to_numpy().astype(np.float64)
        weight = rows.get_column("weight").fill_null(0.0).to_numpy().astype(np.float64)
        ok = np.isfinite(value) & (weight > 0)
        err = np.where(ok, value if self.bad_up else 1.0 - value, 0.0)
        full, first = self.history.extend(windows, rows, [err * np.where(ok, weight, 0.0), np.where(ok, weight, 0.0)])
        csum = np.concatenate([np.zeros((2, 1, full.shape[2])), np.cumsum(full, axis=1)], axis=1)
        k, sid = _cell(rows, first, self.depth)
        budget = self.rule.error_budget

        def window(minutes: int) -> tuple[np.ndarray, np.ndarray]:
            bad = csum[0, k + 1, sid] - csum[0, k + 1 - minutes, sid]
            total = csum[1, k + 1, sid] - csum[1, k + 1 - minutes, sid]
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.where(total > 0, bad / total, np.nan) / budget, total

        cond = np.zeros(rows.height, dtype=bool)
        burn_long = np.full(rows.height, np.nan)
        burn_short = np.full(rows.height, np.nan)
        pair_index = np.zeros(rows.height, dtype=np.int64)
        for i, pair in enumerate(self.rule.burn_windows):  # a handful of pairs per rule, each one vectorised
            bl, _ = window(pair.long_ms // WINDOW_MS)
            bs, short_total = window(pair.short_ms // WINDOW_MS)
            hit = (bl >= pair.factor) & (bs >= pair.factor) & (short_total >= self.rule.min_weight)
            take = hit & ~cond | (~cond & ~np.isfinite(burn_long))
            burn_long = np.where(take, bl, burn_long)
            burn_short = np.where(take, bs, burn_short)
            pair_index = np.where(take, i, pair_index)
            cond |= hit
        return rows.with_columns(
            pl.Series("__cond", cond),
            pl.Series("__burn_long", burn_long).fill_nan(None),
            pl.Series("__burn_short", burn_short).fill_nan(None),
            pl.Series("__burn_pair", pair_index),
        )


class ExpectedBeforeSilence:
    """Per series, the expected value of its last window that was not silent (NaN: none seen yet).

    >>> h = ExpectedBeforeSilence()
    >>> h.ref = np.array([np.nan, 40.0])  # series 1 expected 40 a minute before it went silent
    >>> h.load_state_dict(h.state_dict()); h.ref.tolist()
    [nan, 40.0]
    """

    def __init__(self) -> None:
        self.ref = np.zeros(0, dtype=np.float64)

    def state_dict(self) -> dict[str, Any]:
        """The reference of every series (one NumPy array)."""
        return {"ref": self.ref.copy()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume from :meth:`state_dict`; raises ``ValueError`` naming the field when it does not fit."""
        ref = state.get("ref")
        if not isinstance(ref, np.ndarray) or ref.ndim != 1:
            raise ValueError(f"history 'ref': expected a 1-D array, got {type(ref).__name__}")
        self.ref = ref.astype(np.float64, copy=True)


class Absence:
    """A series silent (value 0) while it was expected to send at least ``min_expected`` a minute.

    "Expected" is what the detector expected in the series' last window that was not silent, not its expected
    value now: a detector learns the zeros of a silent series within minutes, and judged by its current
    expectation an outage would stop counting as one before ``for`` was reached.

    >>> from tunewatch.alert.rules import Rule
    >>> absence = Absence(Rule.model_validate({"alert": "Silent", "kind": "absence", "metric": "plays",
    ...                                        "min_expected": 5}))
    >>> rows = pl.DataFrame({"sid": [0, 0, 0], "value": [30.0, 0.0, 0.0], "expected": [28.0, 27.0, 3.0]})
    >>> absence.evaluate(rows, np.array([0, 60_000, 120_000])).get_column("__cond").to_list()
    [False, True, True]
    """

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.history = ExpectedBeforeSilence()

    def evaluate(self, rows: pl.DataFrame, windows: np.ndarray) -> pl.DataFrame:
        """``rows`` (in window order) plus ``__cond`` and ``__expected_before_silence``."""
        sids = rows.get_column("sid").to_numpy().astype(np.int64)
        value = rows.get_column("value").fill_null(np.nan).to_numpy().astype(np.float64)
        expected = rows.get_column("expected").fill_null(np.nan).to_numpy().astype(np.float64)
        n = int(sids.max()) + 1 if sids.size else 0
        if self.history.ref.size < n:
            grow = np.full(n - self.history.ref.size, np.nan)
            self.history.ref = np.concatenate([self.history.ref, grow])
        sending = (value > 0) & np.isfinite(expected)
        carried = (
            pl.DataFrame({"sid": sids, "ref": np.where(sending, expected, np.nan)})
            .select(pl.col("ref").fill_nan(None).forward_fill().over("sid"))
            .get_column("ref")
            .to_numpy()
            .astype(np.float64)
        )
        ref = np.where(np.isnan(carried), self.history.ref[sids], carried)
        if sids.size:  # remember each series' reference after its last row
            last = sids.size - 1 - np.unique(sids[::-1], return_index=True)[1]
            self.history.ref[sids[last]] = ref[last]
        cond = (value <= 0) & (ref >= self.rule.min_expected)
        return rows.with_columns(pl.Series("__cond", cond), pl.Series("__expected_before_silence", ref).fill_nan(None))


def stateful_condition(rule: Rule) -> RateOfChange | BurnRate | Absence | None:
    """The look-back evaluator of a rule, or ``None`` when its condition is a plain expression."""
    if rule.kind == "absence":
        return Absence(rule)
    if rule.kind == "rate_of_change":
        return RateOfChange(rule)
    if rule.kind == "slo_burn_rate":
        return BurnRate(rule)
    return None
