"""Business KPIs from closed metric windows, exported per market with guarded cardinality.

Additive quantities (plays, streams, skips, playback errors and attempts, estimated revenue) are counters,
so that ``rate()`` and ``sum()`` work in PromQL and ratios over any set of markets (``_other`` included) are
computed from numerators and denominators, never by averaging ratios. The newest closed window is also
exported as gauges (streams, skip rate, failure rate, revenue) for "last minute" panels.
"""

from __future__ import annotations

import contextlib
from typing import Final

import polars as pl
from prometheus_client import CollectorRegistry, Counter, Gauge

from tunewatch.monitor.cardinality import TopNLabel
from tunewatch.process.processor import ProcessingResult

#: metric-frame column → exported counter name (without ``_total``).
COUNTERS: Final = {
    "plays": ("tunewatch_plays", "Play events in closed windows"),
    "streams": ("tunewatch_streams", "Royalty-eligible streams (plays >= 30 s) in closed windows"),
    "skips": ("tunewatch_skips", "Skipped plays in closed windows"),
    "errors": ("tunewatch_playback_errors", "Playback error events in closed windows"),
    "attempts": ("tunewatch_playback_attempts", "Plays + playback errors in closed windows"),
    "est_revenue_micros": (
        "tunewatch_revenue_micros",
        "Estimated revenue in closed windows, micro-units of {currency}",
    ),
}
_VOLUME: Final = "events"
_GAUGES: Final = ("streams", "skip_rate", "failure_rate", "revenue_micros")


class BusinessMetrics:
    """Per-market business counters and newest-window gauges in ``registry``.

    Only the ``top_n`` markets by cumulative event volume get their own ``market`` label; the rest are
    summed into ``market="_other"``, and at most ``max_markets`` distinct market labels are ever emitted.

    >>> from prometheus_client import CollectorRegistry, generate_latest
    >>> from tunewatch.process import MusicDataProcessor
    >>> from tunewatch.validate import EnterpriseDataValidator
    >>> ads = [{"event_id": f"e{i}", "ts": 1_699_999_980_000 + i, "event_type": "ad", "user_id": "u1",
    ...         "market": "BR", "platform": "web", "tier": "free", "ad_revenue_micros": 1200} for i in range(3)]
    >>> registry = CollectorRegistry()
    >>> BusinessMetrics(registry).record(MusicDataProcessor().process(EnterpriseDataValidator().validate(ads)))
    >>> b'market="BR"' in generate_latest(registry)
    True
    """

    def __init__(
        self, registry: CollectorRegistry, *, top_n: int = 20, max_markets: int = 50, currency: str = "USD"
    ) -> None:
        self.markets = TopNLabel(top_n, max_values=max_markets)
        #: ISO 4217 code of the revenue families (named in their help text)
        self.currency = currency
        self.counters = {
            col: Counter(name, doc.format(currency=currency), ["market"], registry=registry)
            for col, (name, doc) in COUNTERS.items()
        }
        self.windows = Counter("tunewatch_windows_closed", "1-minute windows closed", registry=registry)
        self.window_start = Gauge(
            "tunewatch_last_window_start_timestamp_seconds",
            "Start of the newest closed window (unix seconds)",
            registry=registry,
        )
        self.gauges = {
            name: Gauge(
                f"tunewatch_window_{name}",
                f"Newest closed window: {name} per market"
                + (f" (micro-units of {currency})" if "revenue" in name else ""),
                ["market"],
                registry=registry,
            )
            for name in _GAUGES
        }
        self._gauge_markets: set[str] = set()

    def record(self, result: ProcessingResult) -> None:
        """Count every closed window of ``result`` and set the gauges from its newest window."""
        if not result.windows:
            return
        self.windows.inc(len(result.windows))
        self.window_start.set(result.windows[-1] / 1000)
        rows = result.metrics.filter(pl.col("dimset") == "market").select("window_start", "market", _VOLUME, *COUNTERS)
        for market in self.markets.update(rows, "market", _VOLUME):
            self._forget(market)
        folded = self.markets.fold(rows, "market")
        totals = folded.group_by("market").agg(pl.col(*COUNTERS).sum())
        for row in totals.iter_rows(named=True):  # one row per market label (bounded)
            for col, counter in self.counters.items():
                counter.labels(row["market"]).inc(max(0.0, float(row[col] or 0.0)))
        self._set_gauges(folded.filter(pl.col("window_start") == result.windows[-1]))

    def _set_gauges(self, latest: pl.DataFrame) -> None:
        sums = latest.group_by("market").agg(pl.col(*COUNTERS).sum())
        seen: set[str] = set()
        for row in sums.iter_rows(named=True):
            market = row["market"]
            seen.add(market)
            self.gauges["streams"].labels(market).set(row["streams"])
            self.gauges["revenue_micros"].labels(market).set(row["est_revenue_micros"])
            self.gauges["skip_rate"].labels(market).set(row["skips"] / row["plays"] if row["plays"] else 0.0)
            self.gauges["failure_rate"].labels(market).set(row["errors"] / row["attempts"] if row["attempts"] else 0.0)
        for market in self._gauge_markets - seen:  # no traffic in the newest window: drop, do not go stale
            for gauge in self.gauges.values():
                _remove(gauge, market)
        self._gauge_markets = seen

    def _forget(self, market: str) -> None:
        """Drop every series of a market that lost its label (its future traffic counts under ``_other``)."""
        for counter in self.counters.values():
            _remove(counter, market)
        if market in self._gauge_markets:
            for gauge in self.gauges.values():
                _remove(gauge, market)
            self._gauge_markets.discard(market)


def _remove(metric: Counter | Gauge, market: str) -> None:
    with contextlib.suppress(KeyError):  # never set
        metric.remove(market)
