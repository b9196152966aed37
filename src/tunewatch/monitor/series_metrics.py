"""What tunewatch sees, per watched series, as Prometheus gauges: value, expected value, band and anomaly score.

Families (labels ``metric``, ``dimset`` and every dimension field, empty when not part of the series):

- ``tunewatch_series_value``, ``tunewatch_series_expected``, ``tunewatch_series_band_lower``,
  ``tunewatch_series_band_upper``, ``tunewatch_series_anomaly_score`` — the newest closed window of each
  exported series (a Grafana panel draws value, expected and band like the console's chart);
- ``tunewatch_series_window_start_timestamp_seconds`` — start of that window, per series;
- ``tunewatch_series_exported`` — series exported now; ``tunewatch_series_dropped_total`` — distinct series
  refused by the cap.

Cardinality is bounded: at most ``max_series`` series are ever exported over the process lifetime, chosen
coarse-first (global, then one-dimension sets, ...) and by evidence weight; series with a firing alert may
also use ``alerting_reserve`` more. Admission runs at scrape time over the newest point of every series
(vectorised); a batch only updates a frame of newest points. A series with no point in the last ``stale_ms``
(15 minutes of event time) is no longer exported.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Final

import polars as pl
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tunewatch.process.dimensions import dimension_set
from tunewatch.schema import DIMENSION_FIELDS

LABELS: Final = ("metric", "dimset", *DIMENSION_FIELDS)
#: detection column → (family, help)
FAMILIES: Final = {
    "value": ("tunewatch_series_value", "Newest closed window's value of a watched series (the metric's unit)"),
    "expected": ("tunewatch_series_expected", "Value the detector expected for that window"),
    "lower": ("tunewatch_series_band_lower", "Lower edge of the detector's normal band"),
    "upper": ("tunewatch_series_band_upper", "Upper edge of the detector's normal band"),
    "score": ("tunewatch_series_anomaly_score", "Anomaly score of that window (0 normal ... 1 anomalous)"),
}
_SEP: Final = "\x1f"
_KEY: Final = "__key"
#: distinct refused series remembered (for counting each once); beyond it every refusal counts again
MAX_REFUSED_REMEMBERED: Final = 100_000


def _key_expr() -> pl.Expr:
    parts = [pl.col(c).cast(pl.String).fill_null("") for c in LABELS]
    return pl.concat_str(parts, separator=_SEP).alias(_KEY)


def alert_series_key(labels: Mapping[str, str]) -> str | None:
    """The series key of an alert (its ``metric`` and dimension labels); None for alerts on no series."""
    metric = labels.get("metric")
    if not metric:
        return None
    fields = [f for f in DIMENSION_FIELDS if f in labels]
    try:
        dimset = dimension_set(",".join(fields)).name if fields else "global"
    except KeyError:
        return None
    return _SEP.join([metric, dimset, *(labels.get(f, "") for f in DIMENSION_FIELDS)])


class SeriesCollector(Collector):
    """Exports the newest detection point of a bounded set of series (see the module docstring).

    >>> from prometheus_client import CollectorRegistry, generate_latest
    >>> collector = SeriesCollector(max_series=10)
    >>> registry = CollectorRegistry()
    >>> registry.register(collector)
    >>> from tunewatch.detect.stage import DETECTION_SCHEMA
    >>> collector.update(pl.DataFrame([{"metric": "plays", "dimset": "market", "market": "BR",
    ...                                 "window_start": 60_000, "value": 42.0, "expected": 40.0}],
    ...                               schema=DETECTION_SCHEMA))
    >>> b'tunewatch_series_value{' in generate_latest(registry)
    True
    """

    def __init__(self, max_series: int = 300, alerting_reserve: int = 50, stale_ms: int = 15 * 60_000) -> None:
        if max_series < 1 or alerting_reserve < 0:
            raise ValueError(f"need max_series >= 1 and alerting_reserve >= 0, got {max_series}, {alerting_reserve}")
        self.max_series = max_series
        self.alerting_reserve = alerting_reserve
        #: a series whose newest point is this much older than the newest window is no longer exported
        self.stale_ms = stale_ms
        self._lock = threading.Lock()
        self._latest: pl.DataFrame | None = None
        self._admitted: set[str] = set()
        self._reserved = 0  # series admitted for a firing alert, within alerting_reserve
        self._refused: set[str] = set()
        self._alerting: set[str] = set()
        self.dropped = 0

    def update(self, detections: pl.DataFrame) -> None:
        """Keep the newest point of every series in ``detections`` (a detection frame)."""
        if detections.is_empty() or any(c not in detections.columns for c in (*LABELS, "window_start")):
            return
        cols = [*LABELS, "window_start", "weight", *FAMILIES]
        newest = (
            detections.select(c for c in cols if c in detections.columns)
            .with_columns(_key_expr())
            .sort("window_start")
            .unique(_KEY, keep="last")
        )
        with self._lock:
            merged = newest if self._latest is None else pl.concat([self._latest, newest], how="diagonal_relaxed")
            latest = merged.sort("window_start").unique(_KEY, keep="last")
            cutoff = pl.col("window_start").max() - self.stale_ms
            self._latest = latest.filter(pl.col("window_start") >= cutoff)

    def set_alerting(self, labels: Iterable[Mapping[str, str]]) -> None:
        """The series of the alerts firing now (admitted first, within the reserve)."""
        keys = {k for k in (alert_series_key(lab) for lab in labels) if k is not None}
        with self._lock:
            self._alerting = keys

    def _admit(self) -> pl.DataFrame:
        """Admit new series while there is room; count refused ones; return the exported rows (lock held)."""
        latest = self._latest
        if latest is None or latest.is_empty():
            return pl.DataFrame()
        fresh = latest.filter(~pl.col(_KEY).is_in(list(self._admitted)))
        if not fresh.is_empty():
            alerting = fresh.filter(pl.col(_KEY).is_in(list(self._alerting)))
            taken = alerting.get_column(_KEY).head(max(self.alerting_reserve - self._reserved, 0)).to_list()
            self._admitted.update(taken)
            self._reserved += len(taken)
            rest = fresh.filter(~pl.col(_KEY).is_in(list(self._admitted)))
            depth = pl.col("dimset").str.count_matches(",") + (pl.col("dimset") != "global").cast(pl.Int32)
            ranked = rest.with_columns(depth.alias("__depth")).sort(
                ["__depth", "weight", _KEY], descending=[False, True, False], nulls_last=True
            )
            room = self.max_series - (len(self._admitted) - self._reserved)
            self._admitted.update(ranked.get_column(_KEY).head(max(room, 0)).to_list())
            refused = [k for k in ranked.get_column(_KEY).to_list() if k not in self._admitted]
            for key in refused:  # bounded by the series the detection stage watches
                if key not in self._refused:
                    self.dropped += 1
                    if len(self._refused) < MAX_REFUSED_REMEMBERED:
                        self._refused.add(key)
        return latest.filter(pl.col(_KEY).is_in(list(self._admitted)))

    def collect(self) -> Iterator[Metric]:
        """The series families, the exported count and the dropped counter."""
        with self._lock:
            rows = self._admit()
            dropped = self.dropped
        families = {c: GaugeMetricFamily(name, doc, labels=LABELS) for c, (name, doc) in FAMILIES.items()}
        started = GaugeMetricFamily(
            "tunewatch_series_window_start_timestamp_seconds",
            "Start of the window the series gauges describe (unix seconds)",
            labels=LABELS,
        )
        for row in rows.iter_rows(named=True):  # at most max_series + alerting_reserve rows
            labels = [str(row[c] or "") for c in LABELS]
            for col, family in families.items():
                value = row.get(col)
                if value is not None:
                    family.add_metric(labels, float(value))
            started.add_metric(labels, row["window_start"] / 1000)
        yield from families.values()
        yield started
        yield GaugeMetricFamily("tunewatch_series_exported", "Series exported by the tunewatch_series_* gauges",
                                value=rows.height)  # fmt: skip
        yield CounterMetricFamily(
            "tunewatch_series_dropped", "Distinct series not exported because of the series cap", value=dropped
        )

    def describe(self) -> Iterator[Metric]:
        """Nothing up front (the families are built at scrape time)."""
        return iter(())
