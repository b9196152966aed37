"""Grafana dashboards for tunewatch, generated as provisioning JSON (pipeline health, business, quality, alerts).

Every panel queries the families exported by :class:`~tunewatch.monitor.PrometheusMetricsManager` or the
recording rules of ``deploy/prometheus/rules.yml`` (``tunewatch:*``). :func:`dashboards` returns the JSON
models; :func:`provisioning` the Grafana provisioning files that load them and a Prometheus data source.
``tunewatch dashboards export DIR`` writes both.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

import yaml

from tunewatch.monitor.grafana import DATASOURCE_UID, DS, Board, Json, override, query_variable
from tunewatch.monitor.series_metrics import LABELS
from tunewatch.process.revenue import configured_currency

DEFAULT_PROMETHEUS: Final = "http://localhost:9090"
#: Grafana's built-in currency units; other currencies get the ISO code as a suffix
_GRAFANA_CURRENCIES: Final = frozenset(
    {"USD", "GBP", "EUR", "JPY", "RUB", "UAH", "BRL", "DKK", "ISK", "NOK", "SEK", "CZK", "CHF", "PLN", "ZAR", "INR",
     "KRW", "IDR", "PHP", "VND"}
)  # fmt: skip


def currency_unit(currency: str | None = None) -> str:
    """The Grafana unit of revenue amounts in ``currency`` (default: the configured one).

    >>> currency_unit("EUR"), currency_unit("MXN")
    ('currencyEUR', 'suffix: MXN')
    """
    code = currency or configured_currency()
    return f"currency{code}" if code in _GRAFANA_CURRENCIES else f"suffix: {code}"


def _market_variable() -> Json:
    return {
        "name": "market",
        "label": "Market",
        "type": "query",
        "datasource": DS,
        "query": {"query": "label_values(tunewatch_streams_total, market)", "refId": "market"},
        "definition": "label_values(tunewatch_streams_total, market)",
        "refresh": 2,
        "multi": True,
        "includeAll": True,
        "current": {"text": "All", "value": "$__all"},
        "sort": 1,
    }


def pipeline_health() -> Json:
    """Throughput, stage latency and errors, queues, freshness, detection load, cache and process resources."""
    b = Board("tunewatch-health", "tunewatch / pipeline health", "Is tunewatch itself keeping up?")
    b.row("Throughput")
    b.panel("Events per second by outcome", [("tunewatch:events:rate5m", "{{outcome}}")], unit="reqps", w=16)
    b.panel(
        "Validation success (5 m)",
        [("tunewatch:validation_success:ratio_rate5m", "accepted / received")],
        kind="stat",
        unit="percentunit",
        w=8,
        thresholds=[(None, "red"), (0.995, "green")],
    )
    b.row("Stages")
    b.panel("p99 latency per stage", [("tunewatch:stage_duration_seconds:p99_5m", "{{stage}}")], unit="s")
    b.panel("p50 latency per stage", [("tunewatch:stage_duration_seconds:p50_5m", "{{stage}}")], unit="s")
    b.panel("Stage error ratio", [("tunewatch:stage_error:ratio_rate5m", "{{stage}}")], unit="percentunit")
    b.panel("Queue depth", [("max by (queue) (tunewatch_queue_depth)", "{{queue}}")])
    b.row("Freshness and detection")
    b.panel(
        "Freshness lag",
        [("tunewatch:freshness_lag_seconds", "now - watermark"), ("tunewatch_freshness_lag_seconds", "at last batch")],
        unit="s",
        thresholds=[(None, "green"), (300, "red")],
    )
    b.panel(
        "Detection load",
        [
            ("sum(tunewatch_series_watched)", "series watched"),
            ("sum(tunewatch_detectors)", "detectors"),
            ("sum(rate(tunewatch_detections_total[5m]))", "points scored / s"),
        ],
    )
    b.row("Cache")
    b.panel(
        "Cache hit ratio",
        [("tunewatch:cache_hit:ratio_rate5m", "5 m"), ("max(tunewatch_cache_hit_ratio)", "since start")],
        unit="percentunit",
        w=8,
    )
    b.panel(
        "Cache mean read latency",
        [
            (
                "sum(rate(tunewatch_cache_read_seconds_sum[5m])) / sum(rate(tunewatch_cache_read_seconds_count[5m]))",
                "mean",
            ),
            ("max(tunewatch_cache_read_max_seconds)", "max since start"),
        ],
        unit="s",
        w=8,
    )
    b.panel(
        "Cache size, evictions and errors",
        [
            ("sum(tunewatch_cache_bytes)", "bytes"),
            ("sum(rate(tunewatch_cache_evictions_total[5m]))", "evictions/s"),
            ("sum(rate(tunewatch_cache_errors_total[5m]))", "errors/s"),
            ("min(tunewatch_cache_redis_up)", "redis up"),
        ],
        w=8,
    )
    b.row("Process")
    b.panel("Resident memory", [("process_resident_memory_bytes", "{{instance}}")], unit="bytes")
    b.panel("CPU (cores)", [("rate(process_cpu_seconds_total[5m])", "{{instance}}")], unit="short")
    return b.model()


def business_kpis() -> Json:
    """Streams, skip rate, playback failure rate and estimated revenue per market."""
    b = Board("tunewatch-business", "tunewatch / business KPIs", "The music-streaming KPIs tunewatch computes.")
    b.variables.append(_market_variable())
    sel = '{market=~"$market"}'
    b.row("Now")
    b.panel("Streams per minute", [("sum(tunewatch:streams:rate5m) * 60", "streams/min")], kind="stat", w=6)
    b.panel(
        "Skip rate",
        [("sum(rate(tunewatch_skips_total[5m])) / sum(rate(tunewatch_plays_total[5m]))", "skip rate")],
        kind="stat",
        unit="percentunit",
        w=6,
    )
    b.panel(
        "Playback failure rate",
        [
            (
                "sum(rate(tunewatch_playback_errors_total[5m])) / sum(rate(tunewatch_playback_attempts_total[5m]))",
                "failure rate",
            )
        ],
        kind="stat",
        unit="percentunit",
        w=6,
        thresholds=[(None, "green"), (0.02, "orange"), (0.05, "red")],
    )
    b.panel(
        "Estimated revenue per hour",
        [("sum(tunewatch:revenue_micros:increase1h) / 1e6", "revenue/h")],
        kind="stat",
        unit=currency_unit(),
        w=6,
    )
    b.row("Per market")
    b.panel("Streams per second", [(f"tunewatch:streams:rate5m{sel}", "{{market}}")], unit="short")
    b.panel("Skip rate", [(f"tunewatch:skip:ratio_rate5m{sel}", "{{market}}")], unit="percentunit")
    b.panel(
        "Playback failure rate", [(f"tunewatch:playback_failure:ratio_rate5m{sel}", "{{market}}")], unit="percentunit"
    )
    b.panel(
        "Estimated revenue per hour",
        [(f"tunewatch:revenue_micros:increase1h{sel} / 1e6", "{{market}}")],
        unit=currency_unit(),
    )
    b.row("Newest closed window")
    b.panel(
        "Newest window by market",
        [
            (f"tunewatch_window_streams{sel}", "streams {{market}}"),
            (f"tunewatch_window_skip_rate{sel}", "skip rate {{market}}"),
            (f"tunewatch_window_failure_rate{sel}", "failure rate {{market}}"),
            (f"tunewatch_window_revenue_micros{sel}", "revenue micros {{market}}"),
        ],
        kind="table",
        w=24,
    )
    return b.model()


def data_quality() -> Json:
    """Validation success, rejection reasons, duplicates, lateness of data and windows closed."""
    b = Board("tunewatch-quality", "tunewatch / data quality", "What the validator accepts, rejects and why.")
    b.panel(
        "Validation success rate",
        [("tunewatch:validation_success:ratio_rate5m", "accepted / received")],
        unit="percentunit",
        w=16,
        thresholds=[(None, "red"), (0.995, "green")],
    )
    b.panel(
        "Duplicates and rejections per second",
        [('tunewatch:events:rate5m{outcome=~"duplicate|rejected"}', "{{outcome}}")],
        kind="stat",
        unit="reqps",
        w=8,
    )
    b.panel("Top rejection reasons", [("topk(10, tunewatch:rejections:rate5m)", "{{reason}}")], unit="reqps", w=16)
    b.panel(
        "Rejections by reason (since start)",
        [("topk(20, sum by (reason) (tunewatch_rejections_total))", "{{reason}}")],
        kind="bargauge",
        w=8,
    )
    b.panel(
        "Freshness lag",
        [("tunewatch:freshness_lag_seconds", "now - watermark")],
        unit="s",
        thresholds=[(None, "green"), (300, "red")],
    )
    b.panel(
        "Windows closed per minute",
        [
            ("sum(rate(tunewatch_windows_closed_total[5m])) * 60", "windows/min"),
            ("time() - max(tunewatch_last_window_start_timestamp_seconds)", "age of newest window (s)"),
        ],
    )
    return b.model()


def alerts() -> Json:
    """Alerts tunewatch raises about the music (by name and severity) and about itself (Prometheus ALERTS)."""
    b = Board("tunewatch-alerts", "tunewatch / alerts", "Anomaly alerts raised by tunewatch and its self-alerts.")
    b.panel(
        "Alerts firing now",
        [("sum(tunewatch_alerts_active)", "firing")],
        kind="stat",
        w=6,
        thresholds=[(None, "green"), (1, "red")],
    )
    b.panel(
        "Firing by severity", [("sum by (severity) (tunewatch_alerts_firing)", "{{severity}}")], kind="bargauge", w=6
    )
    b.panel(
        "Firing by alert",
        [("sum by (alertname, severity) (tunewatch_alerts_firing) > 0", "{{alertname}}")],
        kind="table",
        w=12,
    )
    b.panel(
        "Alert state changes per hour",
        [("sum by (status) (increase(tunewatch_alert_changes_total[1h]))", "{{status}}")],
        w=12,
    )
    b.panel("Firing over time by alert", [("sum by (alertname) (tunewatch_alerts_firing)", "{{alertname}}")], w=12)
    b.panel(
        "tunewatch self-alerts (Prometheus)",
        [('ALERTS{alertname=~"Tunewatch.*", alertstate="firing"}', "{{alertname}} {{stage}}")],
        kind="table",
        w=24,
    )
    return b.model()


def watched_series() -> Json:
    """What the detectors see for one series: value, expected value and normal band (as the console draws them),
    the anomaly score, and the most anomalous exported series."""
    b = Board(
        "tunewatch-series",
        "tunewatch / watched series",
        "Value, expected value, band and anomaly score of the series tunewatch watches (tunewatch_series_*).",
    )
    base = "tunewatch_series_value"
    b.variables.append(query_variable("metric", "Metric", f"label_values({base}, metric)"))
    b.variables.append(query_variable("dimset", "Dimensions", f'label_values({base}{{metric="$metric"}}, dimset)'))
    dims = [f for f in LABELS if f not in ("metric", "dimset")]
    for f in dims:
        query = f'label_values({base}{{metric="$metric", dimset="$dimset"}}, {f})'
        b.variables.append(query_variable(f, f, query, include_all=True))
    sel = '{metric="$metric", dimset="$dimset", ' + ", ".join(f'{f}=~"${f}"' for f in dims) + "}"
    band = [
        override("upper", fillBelowTo="lower", lineWidth=0, fillOpacity=20),
        override("lower", lineWidth=0),
        override("expected", lineStyle={"fill": "dash", "dash": [10, 10]}),
    ]
    b.panel(
        "Value, expected and band ($metric)",
        [
            (f"tunewatch_series_value{sel}", "value"),
            (f"tunewatch_series_expected{sel}", "expected"),
            (f"tunewatch_series_band_lower{sel}", "lower"),
            (f"tunewatch_series_band_upper{sel}", "upper"),
        ],
        w=24,
        h=10,
        overrides=band,
        description="One series: pick every dimension; the shaded area is the detector's normal band.",
    )
    b.panel(
        "Anomaly score",
        [(f"tunewatch_series_anomaly_score{sel}", "score")],
        unit="percentunit",
        w=12,
        thresholds=[(None, "green"), (0.5, "orange"), (0.9, "red")],
    )
    b.panel(
        "Series exported and dropped by the cap",
        [("sum(tunewatch_series_exported)", "exported"), ("sum(tunewatch_series_dropped_total)", "dropped")],
        w=12,
    )
    b.panel(
        "Most anomalous series now",
        [("topk(20, tunewatch_series_anomaly_score)", "{{metric}} {{dimset}}")],
        kind="table",
        w=24,
    )
    return b.model()


def dashboards() -> dict[str, Json]:
    """Every dashboard by file name (``tunewatch-<name>.json``)."""
    boards = (pipeline_health(), business_kpis(), data_quality(), alerts(), watched_series())
    return {f"{board['uid']}.json": board for board in boards}


def provisioning(dashboards_path: str, prometheus_url: str = DEFAULT_PROMETHEUS) -> dict[str, str]:
    """Grafana provisioning YAML by relative path: a file provider over ``dashboards_path`` and a data source."""
    provider = {
        "apiVersion": 1,
        "providers": [
            {
                "name": "tunewatch",
                "folder": "tunewatch",
                "type": "file",
                "disableDeletion": False,
                "allowUiUpdates": False,
                "updateIntervalSeconds": 30,
                "options": {"path": dashboards_path, "foldersFromFilesStructure": False},
            }
        ],
    }
    datasource = {
        "apiVersion": 1,
        "datasources": [
            {
                "name": "Prometheus",
                "uid": DATASOURCE_UID,
                "type": "prometheus",
                "access": "proxy",
                "url": prometheus_url,
                "isDefault": True,
                "jsonData": {"timeInterval": "15s"},
            }
        ],
    }
    return {
        "dashboards/tunewatch.yml": yaml.safe_dump(provider, sort_keys=False),
        "datasources/tunewatch.yml": yaml.safe_dump(datasource, sort_keys=False),
    }


def render(board: Json) -> str:
    """Stable JSON text of a dashboard (sorted keys, two-space indent, trailing newline)."""
    return json.dumps(board, indent=2, sort_keys=True) + "\n"


def export(
    directory: Path, *, dashboards_path: str | None = None, prometheus_url: str = DEFAULT_PROMETHEUS
) -> list[Path]:
    """Write ``dashboards/*.json`` and ``provisioning/{dashboards,datasources}/tunewatch.yml`` under ``directory``.

    ``dashboards_path`` is where Grafana will find the JSON files (default: ``directory/dashboards``, absolute).
    Returns the files written.
    """
    boards_dir = directory / "dashboards"
    written: list[Path] = []
    boards_dir.mkdir(parents=True, exist_ok=True)
    for name, board in dashboards().items():
        target = boards_dir / name
        target.write_text(render(board), encoding="utf-8")
        written.append(target)
    path_in_grafana = dashboards_path or str(boards_dir.resolve())
    for rel, text in provisioning(path_in_grafana, prometheus_url).items():
        target = directory / "provisioning" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        written.append(target)
    return written
