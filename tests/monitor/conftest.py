"""Fixtures of the monitor tests: a metrics manager fed by a real pipeline run, and a real scrape parser."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.conftest import BASE_MS, make_play
from tunewatch.cache.manager import MusicStreamingCacheManager
from tunewatch.monitor import PrometheusMetricsManager
from tunewatch.pipeline.core import Pipeline

MARKETS = ("BR", "US", "SE", "DE", "FR")
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
#: Metric names in PromQL: tunewatch's families and recording rules, and the process/python collectors'.
METRIC_NAME = re.compile(r"\b(?:tunewatch[_:][a-z0-9_:]*[a-z0-9_]|process_[a-z0-9_]+|python_[a-z0-9_]+)")


def promql_of(board: dict[str, Any]) -> list[str]:
    """Every PromQL expression of a dashboard (panel targets and query variables)."""
    out = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    out += [v["definition"] for v in board["templating"]["list"] if "definition" in v]
    return out


def scrape(metrics: PrometheusMetricsManager) -> dict[str, list[Sample]]:
    """Parse the exposition with prometheus_client's parser: sample name → samples."""
    out: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


def value(samples: dict[str, list[Sample]], name: str, **labels: str) -> float:
    """The value of the one sample ``name`` with exactly ``labels`` (KeyError naming what is missing)."""
    for s in samples.get(name, []):
        if s.labels == labels:
            return float(s.value)
    raise KeyError(f"no sample {name}{labels}")


def stream(minutes: int = 6, per_minute: int = 100) -> list[dict[str, Any]]:
    """Plays over ``minutes`` minutes, market volumes in the ratio 5:4:3:2:1, every 10th play skipped."""
    weights = [m for i, m in enumerate(MARKETS) for _ in range(len(MARKETS) - i)]
    events = []
    for i in range(minutes * per_minute):
        skip = i % 10 == 0
        events.append(
            make_play(
                i,
                BASE_MS + i * 60_000 // per_minute,
                market=weights[i % len(weights)],
                ms_played=10_000 if skip else 60_000,
                reason_end="fwdbtn" if skip else "trackdone",
            )
        )
    return events


@pytest.fixture
def pipeline_run() -> tuple[PrometheusMetricsManager, Pipeline]:
    """A manager fed the way the service feeds it, from a real pipeline over a small stream with dirt."""
    metrics = PrometheusMetricsManager(top_markets=3, max_markets=4, clock=lambda: BASE_MS / 1000 + 600)
    pipe = Pipeline()
    events = stream()
    events.append(make_play(0, BASE_MS))  # duplicate id
    events.append({**make_play(10_001, BASE_MS), "market": "XX"})  # unknown market
    events.append({**make_play(10_002, BASE_MS), "platform": "toaster"})  # bad platform
    for start in range(0, len(events), 100):
        with metrics.time_stage("ingest"):
            outcome = pipe.ingest(events[start : start + 100])
        v = outcome.validation
        metrics.record_validation(
            received=v.received, accepted=v.accepted, rejected=v.reason_counts, duplicates=v.duplicates
        )
        metrics.record_metrics(outcome.processed)
        metrics.record_watermark(v.watermark)
        metrics.record_detection(
            outcome.detections, series=pipe.detection.series_count, detectors=len(pipe.detection.detectors)
        )
        metrics.record_alerts(pipe.engine.active())
        for alert in outcome.alerts:
            metrics.record_alert_change(alert.status, alert.name)
    with metrics.time_stage("ingest"):
        final = pipe.finish()
    metrics.record_metrics(final.processed)
    metrics.set_queue_depth("ingest", 3)
    cache = MusicStreamingCacheManager()
    cache.store(final.processed)
    cache.get("missing")
    metrics.record_cache(cache.stats())
    return metrics, pipe
