"""The per-event weight columns that every window aggregation sums, and the startup-time quantiles it reports."""

from __future__ import annotations

from typing import Final

#: Columns of the derived events summed per (window, series); ratios are formed from them afterwards.
SUMS: Final = (
    "events",
    "plays",
    "streams",
    "errors",
    "ads",
    "skips",
    "completions",
    "rebuffer_ms",
    "ms_played",
    "bitrate_n",
    "low_quality_n",
    "rec_plays",
    "rec_accepted",
    "ad_revenue_micros",
    "stream_revenue_micros",
    "startup_n",
)
#: Startup-time quantile metrics and their probabilities (lower interpolation over log buckets).
QUANTILES: Final = {"startup_ms_p50": 0.5, "startup_ms_p95": 0.95, "startup_ms_p99": 0.99}
