"""PrometheusMetricsManager, scraped through a real registry and parsed with prometheus_client's parser."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import BASE_MS, make_play
from tests.monitor.conftest import MARKETS, scrape, stream, value
from tunewatch.monitor import OTHER, PrometheusMetricsManager
from tunewatch.pipeline.core import Pipeline
from tunewatch.process.processor import MusicDataProcessor
from tunewatch.validate import EnterpriseDataValidator


def test_events_by_outcome_balance_with_the_pipeline(pipeline_run: tuple[PrometheusMetricsManager, Pipeline]) -> None:
    metrics, pipe = pipeline_run
    s = scrape(metrics)
    c = pipe.counters
    assert value(s, "tunewatch_events_received_total") == c.received == 603
    assert value(s, "tunewatch_events_total", outcome="accepted") == c.accepted == 600
    assert value(s, "tunewatch_events_total", outcome="duplicate") == c.duplicates == 1
    assert value(s, "tunewatch_events_total", outcome="rejected") == c.rejected == 2
    # the outcomes are disjoint: sum() over them is the events received, not twice as many
    assert sum(x.value for x in s["tunewatch_events_total"]) == c.received
    reasons = {x.labels["reason"]: x.value for x in s["tunewatch_rejections_total"]}
    assert sum(reasons.values()) == 2 and any(r.startswith("market") for r in reasons)


def test_business_counters_match_the_processed_windows(
    pipeline_run: tuple[PrometheusMetricsManager, Pipeline],
) -> None:
    metrics, pipe = pipeline_run
    s = scrape(metrics)
    streams = {x.labels["market"]: x.value for x in s["tunewatch_streams_total"]}
    plays = {x.labels["market"]: x.value for x in s["tunewatch_plays_total"]}
    skips = {x.labels["market"]: x.value for x in s["tunewatch_skips_total"]}
    # top 3 of 5 markets by volume keep their label; DE and FR are folded into _other
    assert set(streams) == {"BR", "US", "SE", OTHER}
    assert sum(plays.values()) == 600 and sum(skips.values()) == 60
    assert sum(streams.values()) == 540  # skipped plays last 10 s: not streams
    assert plays["BR"] == pytest.approx(600 * 5 / 15) and plays[OTHER] == pytest.approx(600 * 3 / 15)
    assert value(s, "tunewatch_windows_closed_total") == pipe.counters.windows == 6
    revenue = sum(x.value for x in s["tunewatch_revenue_micros_total"])
    assert revenue > 0


def test_newest_window_gauges_compute_ratios_from_sums() -> None:
    events = [make_play(i, BASE_MS + i, market=m) for i, m in enumerate(["BR"] * 6 + ["DE"] * 3 + ["FR"] * 1)]
    for e in events[6:8]:  # two of DE's three plays skipped, FR's one play not
        e.update(ms_played=5_000, reason_end="fwdbtn")
    metrics = PrometheusMetricsManager(top_markets=1, max_markets=1)
    metrics.record_metrics(MusicDataProcessor().process(EnterpriseDataValidator().validate(events)))
    s = scrape(metrics)
    assert value(s, "tunewatch_window_skip_rate", market="BR") == 0.0
    assert value(s, "tunewatch_window_skip_rate", market=OTHER) == pytest.approx(2 / 4)  # not mean(2/3, 0/1)
    assert value(s, "tunewatch_window_streams", market=OTHER) == 2.0
    assert value(s, "tunewatch_window_failure_rate", market="BR") == 0.0


def test_market_labels_stay_capped_while_the_ranking_churns() -> None:
    metrics = PrometheusMetricsManager(top_markets=2, max_markets=3)
    validator, processor = EnterpriseDataValidator(), MusicDataProcessor()
    countries = ["BR", "US", "SE", "DE", "FR", "JP", "MX", "GB"]
    seen: set[str] = set()
    for minute, heavy in enumerate(countries):  # each minute another market dominates
        ev = [make_play(minute * 100 + i, BASE_MS + minute * 60_000 + i, market=heavy) for i in range(10 * minute + 10)]
        ev += [make_play(minute * 100 + 90 + i, BASE_MS + minute * 60_000 + 90 + i, market="BR") for i in range(5)]
        metrics.record_metrics(processor.process(validator.validate(ev)))
        labels = {x.labels["market"] for x in scrape(metrics)["tunewatch_streams_total"]}
        assert len(labels - {OTHER}) <= 2  # top-N at any moment
        seen |= labels - {OTHER}
    assert len(seen) == 3  # the hard cap on label values over the whole run
    total = sum(x.value for x in scrape(metrics)["tunewatch_plays_total"])
    assert total <= sum(10 * m + 15 for m in range(len(countries)))  # demoted series removed, never double counted


def test_time_stage_counts_batches_and_errors() -> None:
    metrics = PrometheusMetricsManager(process_metrics=False)
    with metrics.time_stage("validate"):
        pass
    with pytest.raises(RuntimeError), metrics.time_stage("detect"):
        raise RuntimeError("boom")
    metrics.observe_stage("notify", 0.2)
    metrics.observe_stage("pipeline", 0.2)  # the older name of ingest
    s = scrape(metrics)
    assert value(s, "tunewatch_stage_duration_seconds_count", stage="validate") == 1
    assert value(s, "tunewatch_stage_duration_seconds_count", stage="detect") == 1
    assert value(s, "tunewatch_stage_errors_total", stage="detect") == 1
    assert value(s, "tunewatch_stage_errors_total", stage="validate") == 0
    assert value(s, "tunewatch_stage_duration_seconds_count", stage="ingest") == 1
    assert "pipeline" not in {x.labels["stage"] for x in s["tunewatch_stage_duration_seconds_count"]}
    assert value(s, "tunewatch_stage_duration_seconds_bucket", stage="notify", le="0.1") == 0
    assert value(s, "tunewatch_stage_duration_seconds_bucket", stage="notify", le="0.25") == 1
    with pytest.raises(ValueError, match="stage: unknown stage 'parse'"):
        metrics.observe_stage("parse", 0.1)


def test_labels_from_data_are_capped() -> None:
    metrics = PrometheusMetricsManager(max_reasons=2, max_queues=1, max_alertnames=1, process_metrics=False)
    metrics.record_validation(received=3, accepted=0, rejected={"a: x": 1, "b: y": 1, "c: z": 1}, duplicates=0)
    metrics.set_queue_depth("ingest", 4)
    metrics.set_queue_depth("notify", 7)
    metrics.record_alert_change("firing", "A")
    metrics.record_alert_change("firing", "B")
    s = scrape(metrics)
    assert {x.labels["reason"] for x in s["tunewatch_rejections_total"]} == {"a: x", "b: y", OTHER}
    assert value(s, "tunewatch_queue_depth", queue=OTHER) == 7
    assert value(s, "tunewatch_alert_changes_total", status="firing", alertname=OTHER) == 1


class _Alert:
    def __init__(self, name: str, severity: str) -> None:
        self.labels = {"alertname": name, "severity": severity, "market": "BR"}


def test_firing_alerts_by_name_and_severity_go_back_to_zero() -> None:
    metrics = PrometheusMetricsManager(process_metrics=False)
    metrics.record_alerts([_Alert("StreamsDrop", "critical"), _Alert("StreamsDrop", "critical"), _Alert("Skip", "")])
    s = scrape(metrics)
    assert value(s, "tunewatch_alerts_firing", alertname="StreamsDrop", severity="critical") == 2
    assert value(s, "tunewatch_alerts_active") == 3
    metrics.record_alerts([])
    s = scrape(metrics)
    assert value(s, "tunewatch_alerts_firing", alertname="StreamsDrop", severity="critical") == 0
    assert value(s, "tunewatch_alerts_active") == 0


def test_freshness_uses_the_injected_clock() -> None:
    now = [BASE_MS / 1000 + 90]
    metrics = PrometheusMetricsManager(clock=lambda: now[0], process_metrics=False)
    metrics.record_watermark(BASE_MS)
    metrics.record_watermark(None)  # nothing accepted yet: unchanged
    s = scrape(metrics)
    assert value(s, "tunewatch_freshness_lag_seconds") == 90
    assert value(s, "tunewatch_watermark_timestamp_seconds") == BASE_MS / 1000


def test_detection_counts(pipeline_run: tuple[PrometheusMetricsManager, Pipeline]) -> None:
    metrics, pipe = pipeline_run
    s = scrape(metrics)
    assert value(s, "tunewatch_series_watched") == pipe.detection.series_count > 0
    assert value(s, "tunewatch_detectors") == len(pipe.detection.detectors) > 0
    assert sum(x.value for x in s["tunewatch_detections_total"]) > 0


def test_cache_statistics_are_typed_families(pipeline_run: tuple[PrometheusMetricsManager, Pipeline]) -> None:
    metrics, _ = pipeline_run
    families = {f.name: f for f in text_string_to_metric_families(metrics.exposition().decode())}
    assert families["tunewatch_cache_hits"].type == "counter"
    assert families["tunewatch_cache_misses"].type == "counter"
    assert families["tunewatch_cache_hit_ratio"].type == "gauge"
    assert families["tunewatch_cache_read_seconds"].type == "summary"
    s = scrape(metrics)
    assert value(s, "tunewatch_cache_misses_total") == 1
    assert value(s, "tunewatch_cache_hit_ratio") == 0.0
    assert value(s, "tunewatch_cache_entries") > 0 and value(s, "tunewatch_cache_bytes") > 0
    assert value(s, "tunewatch_cache_read_seconds_count") == 1


def test_watch_cache_pulls_on_every_scrape() -> None:
    stats: dict[str, Any] = {"hits": 1.0, "misses": 1.0, "hit_ratio": 0.5, "custom_thing": 3.0, "label": "x"}
    metrics = PrometheusMetricsManager(process_metrics=False)
    metrics.watch_cache(lambda: stats)
    assert value(scrape(metrics), "tunewatch_cache_hits_total") == 1
    stats["hits"] = 5.0
    s = scrape(metrics)
    assert value(s, "tunewatch_cache_hits_total") == 5
    assert value(s, "tunewatch_cache_other_total", stat="custom_thing") == 3
    families = {f.name: f.type for f in text_string_to_metric_families(metrics.exposition().decode())}
    assert families["tunewatch_cache_other"] == "counter"


def test_process_memory_and_cpu_are_exported(pipeline_run: tuple[PrometheusMetricsManager, Pipeline]) -> None:
    s = scrape(pipeline_run[0])
    if "process_resident_memory_bytes" not in s:
        pytest.skip("prometheus_client exports process metrics only where /proc exists (Linux)")
    assert value(s, "process_resident_memory_bytes") > 10_000_000
    assert value(s, "process_cpu_seconds_total") > 0
    assert value(s, "tunewatch_build_info", version=s["tunewatch_build_info"][0].labels["version"]) == 1


def test_registry_is_private_by_default() -> None:
    before = {m.name for m in REGISTRY.collect()}
    a, b = PrometheusMetricsManager(), PrometheusMetricsManager()  # no duplicate-timeseries error
    assert a.registry is not b.registry
    assert {m.name for m in REGISTRY.collect()} == before
    shared = CollectorRegistry()
    c = PrometheusMetricsManager(shared, process_metrics=False)
    c.record_validation(received=1, accepted=1, rejected={}, duplicates=0)
    assert shared.get_sample_value("tunewatch_events_total", {"outcome": "accepted"}) == 1


def test_empty_results_change_nothing() -> None:
    metrics = PrometheusMetricsManager(process_metrics=False)
    metrics.record_metrics(MusicDataProcessor().process(pl.DataFrame()))
    metrics.record_detection(None, series=0, detectors=0)
    s = scrape(metrics)
    assert "tunewatch_streams_total" not in s and value(s, "tunewatch_windows_closed_total") == 0


def test_stream_helper_has_the_intended_mix() -> None:
    events = stream(minutes=1, per_minute=150)
    assert {e["market"] for e in events} == set(MARKETS)
    assert sum(e["reason_end"] == "fwdbtn" for e in events) == 15
