"""Per-series gauges (what the detectors see), their cardinality cap, and promtool's lint of the whole exposition."""

from __future__ import annotations

import shutil
import subprocess

import polars as pl
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.monitor.conftest import scrape, stream, value
from tunewatch.detect.stage import DETECTION_SCHEMA
from tunewatch.monitor import PrometheusMetricsManager
from tunewatch.pipeline.core import Pipeline

PROMTOOL = shutil.which("promtool")
EMPTY = {f: "" for f in ("market", "platform", "cdn", "tier", "source", "track_id", "artist_id")}


def _detections(rows: list[tuple[str, str, dict[str, str], float, float]], window: int = 0) -> pl.DataFrame:
    """(metric, dimset, dims, value, weight) rows with a band of ±10 % around expected = value / 2."""
    out = [
        {"window_start": window, "metric": m, "sid": i, "dimset": d, **dims, "value": v, "weight": w,
         "expected": v / 2, "lower": v * 0.45, "upper": v * 0.55, "score": 0.9}
        for i, (m, d, dims, v, w) in enumerate(rows)
    ]  # fmt: skip
    return pl.DataFrame(out, schema=DETECTION_SCHEMA)


def test_a_watched_series_exports_value_expected_band_and_score() -> None:
    metrics = PrometheusMetricsManager(process_metrics=False)
    pipe = Pipeline()
    events = stream(minutes=25)  # past the detectors' warm-up: expected values and bands exist
    newest = pl.DataFrame()
    for start in range(0, len(events), 100):
        outcome = pipe.ingest(events[start : start + 100])
        metrics.record_metrics(outcome.processed)
        metrics.record_detection(outcome.detections, series=pipe.detection.series_count, detectors=1)
        if not outcome.detections.is_empty():
            newest = outcome.detections
    s = scrape(metrics)
    labels = {**EMPTY, "metric": "plays", "dimset": "market", "market": "BR"}
    last = (
        newest.filter((pl.col("metric") == "plays") & (pl.col("market") == "BR"))
        .sort("window_start")
        .row(-1, named=True)
    )
    assert last["expected"] is not None
    families = {"value": "tunewatch_series_value", "expected": "tunewatch_series_expected",
                "lower": "tunewatch_series_band_lower", "upper": "tunewatch_series_band_upper",
                "score": "tunewatch_series_anomaly_score"}  # fmt: skip
    for column, family in families.items():
        assert value(s, family, **labels) == pytest.approx(last[column]), family
    assert last["lower"] <= last["expected"] <= last["upper"]
    started = value(s, "tunewatch_series_window_start_timestamp_seconds", **labels)
    assert started == last["window_start"] / 1000 == value(s, "tunewatch_last_window_start_timestamp_seconds")
    assert value(s, "tunewatch_series_exported") == len(s["tunewatch_series_value"]) > 0
    assert value(s, "tunewatch_series_dropped_total") == 0


def test_the_cap_keeps_coarse_and_alerting_series_and_counts_the_dropped_ones() -> None:
    metrics = PrometheusMetricsManager(max_series=3, process_metrics=False)
    tracks = [("plays", "track_id", {"track_id": f"t{i}"}, 10.0 + i, 100.0) for i in range(6)]
    markets = [("plays", "market", {"market": m}, 50.0, 500.0) for m in ("BR", "US")]
    metrics.record_detection(_detections([*tracks, ("plays", "global", {}, 200.0, 2000.0), *markets]),
                             series=9, detectors=1)  # fmt: skip

    class _Firing:
        labels = {"alertname": "PlaysDrop", "severity": "critical", "metric": "plays", "track_id": "t4"}  # noqa: RUF012

    metrics.record_alerts([_Firing()])
    s = scrape(metrics)
    exported = {(x.labels["dimset"], x.labels["market"] or x.labels["track_id"]) for x in s["tunewatch_series_value"]}
    # the alerting track first (within the reserve), then global and the markets; the other tracks are dropped
    assert exported == {("track_id", "t4"), ("global", ""), ("market", "BR"), ("market", "US")}
    assert value(s, "tunewatch_series_dropped_total") == 5
    # the same series again: nothing new is dropped, the exported values follow the newest window
    metrics.record_detection(_detections([*tracks, ("plays", "global", {}, 300.0, 2000.0)], window=60_000),
                             series=9, detectors=1)  # fmt: skip
    s = scrape(metrics)
    assert value(s, "tunewatch_series_dropped_total") == 5
    assert value(s, "tunewatch_series_value", **{**EMPTY, "metric": "plays", "dimset": "global"}) == 300.0
    assert len(s["tunewatch_series_value"]) == 4


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package `prometheus`)")
def test_promtool_finds_nothing_to_lint_in_a_populated_exposition(
    pipeline_run: tuple[PrometheusMetricsManager, Pipeline],
) -> None:
    metrics, _ = pipeline_run

    class _Firing:
        labels = {"alertname": "PlaysDrop", "severity": "critical", "metric": "plays", "market": "BR"}  # noqa: RUF012

    metrics.record_alerts([_Firing()])
    text = metrics.exposition()
    assert PROMTOOL is not None
    result = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert result.stdout.strip() == b"" and result.stderr.strip() == b"", result.stderr.decode()
    names = {f.name for f in text_string_to_metric_families(text.decode())}
    assert {"tunewatch_series_value", "tunewatch_events_received", "tunewatch_series_dropped"} <= names
    assert not any(n.endswith("_seconds") and "watermark" in n and "timestamp" not in n for n in names)


def test_a_series_silent_for_fifteen_minutes_is_no_longer_exported() -> None:
    metrics = PrometheusMetricsManager(process_metrics=False)
    metrics.record_detection(_detections([("plays", "market", {"market": "BR"}, 50.0, 500.0)]), series=1, detectors=1)
    later = _detections([("plays", "market", {"market": "US"}, 50.0, 500.0)], window=16 * 60_000)
    metrics.record_detection(later, series=2, detectors=1)
    s = scrape(metrics)
    assert {x.labels["market"] for x in s["tunewatch_series_value"]} == {"US"}
