"""The metric catalogue (ARCHITECTURE.md §3): names, meaning, and how each metric is weighted and judged."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

MetricKind = Literal["count", "ratio", "quantile", "sum"]


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One metric of the catalogue.

    ``weight`` names the column that measures how much evidence a value rests on (the denominator of a
    ratio, the number of samples of a quantile); detectors use it for their noise floor and rules for
    minimum-volume guards. ``bad`` is the direction in which a change hurts the business.

    >>> spec = METRICS["failure_rate"]
    >>> spec.kind, spec.weight, spec.bad
    ('ratio', 'attempts', 'up')
    """

    name: str
    kind: MetricKind
    description: str
    weight: str | None = None
    bad: Literal["up", "down", "both"] = "both"
    unit: str = ""


METRICS: Final[dict[str, MetricSpec]] = {
    m.name: m
    for m in (
        MetricSpec("events", "count", "accepted events of any type"),
        MetricSpec("plays", "count", "play events", bad="down"),
        MetricSpec("streams", "count", "plays with ms_played >= 30 s (royalty-eligible)", bad="both"),
        MetricSpec("errors", "count", "playback error events", bad="up"),
        MetricSpec("ads", "count", "ad impressions", bad="down"),
        MetricSpec("unique_listeners", "count", "distinct user_id (HyperLogLog estimate)", bad="down"),
        MetricSpec("skip_rate", "ratio", "skipped plays / plays", weight="plays", bad="up"),
        MetricSpec("completion_rate", "ratio", "plays ended by trackdone / plays", weight="plays", bad="down"),
        MetricSpec("failure_rate", "ratio", "error events / (plays + errors)", weight="attempts", bad="up"),
        MetricSpec("rebuffer_ratio", "ratio", "sum rebuffer_ms / sum ms_played", weight="plays", bad="up"),
        MetricSpec(
            "low_quality_share", "ratio", "plays under 96 kbps / plays with bitrate", weight="bitrate_n", bad="up"
        ),
        MetricSpec(
            "rec_acceptance",
            "ratio",
            "non-skipped recommendation plays / recommendation plays",
            weight="rec_plays",
            bad="down",
        ),
        MetricSpec("startup_ms_p50", "quantile", "median time to first audio", weight="startup_n", bad="up", unit="ms"),
        MetricSpec(
            "startup_ms_p95", "quantile", "95th percentile time to first audio", weight="startup_n", bad="up", unit="ms"
        ),
        MetricSpec(
            "startup_ms_p99", "quantile", "99th percentile time to first audio", weight="startup_n", bad="up", unit="ms"
        ),
        MetricSpec("ad_revenue_micros", "sum", "sum of ad revenue", bad="down", unit="micros"),
        MetricSpec(
            "est_revenue_micros",
            "sum",
            "streams x per-stream rate (market, tier) + ad revenue",
            bad="down",
            unit="micros",
        ),
        MetricSpec("streams_per_listener", "ratio", "streams / unique listeners", weight="unique_listeners", bad="up"),
        # data quality (global rows only; see tunewatch.process.quality)
        MetricSpec("events_received", "count", "events received, whatever their outcome"),
        MetricSpec("events_rejected", "count", "events rejected by validation (quarantined)", bad="up"),
        MetricSpec("duplicates", "count", "repeated event_ids (counted, not processed twice)", bad="up"),
        MetricSpec("validation_success_rate", "ratio", "accepted / received", weight="events_received", bad="down"),
        MetricSpec("error_rate", "ratio", "undecodable lines / received", weight="events_received", bad="up"),
        MetricSpec("duplicate_rate", "ratio", "duplicates / received", weight="events_received", bad="up"),
        MetricSpec("freshness_lag_s", "sum", "processing time - newest event time (live mode)", bad="up", unit="s"),
    )
}

#: Columns of the metric frame that are evidence weights rather than metrics.
WEIGHT_COLUMNS: Final = ("attempts", "bitrate_n", "rec_plays", "startup_n")
