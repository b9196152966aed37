"""One platform's plays judged by pooled evidence: the rule and detection frames the pooled-evidence tests share."""

from __future__ import annotations

from typing import Any

import polars as pl

from tunewatch.detect.stage import DETECTION_SCHEMA

T0 = 1_767_571_200_000
MINUTE = 60_000
METRICS = pl.DataFrame({"window_start": [T0], "dimset": ["platform"], "platform": ["tv"], "est_revenue_micros": [1e6]})


def plays_drop_rules(hold: str, *, count_tail: bool | None = None) -> str:
    """A PlaysDrop anomaly rule on platforms with size guards and ``for: hold`` (and ``count_tail`` when given)."""
    tail = "" if count_tail is None else f"\n        count_tail: {str(count_tail).lower()}"
    return f"""
groups:
  - name: g
    rules:
      - alert: PlaysDrop
        kind: anomaly
        metric: plays
        direction: down
        dimensions: [platform]
        min_score: 0.5
        min_ratio: 2.0
        min_excess: 10{tail}
        for: {hold}
"""


def plays_frame(minutes: list[dict[str, Any]]) -> pl.DataFrame:
    """Detections of platform=tv's plays, one minute a row from T0 (score 0.9); ``minutes`` give the values."""
    base = {"metric": "plays", "sid": 0, "dimset": "platform", "platform": "tv", "weight": 1.0,
            "evidence_weight": 5.0, "lower": 0.0, "score": 0.9}  # fmt: skip
    rows = [{"window_start": T0 + i * MINUTE, **base, **m} for i, m in enumerate(minutes)]
    return pl.DataFrame(rows, schema=DETECTION_SCHEMA)
