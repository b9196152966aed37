"""One platform's plays judged by pooled evidence: the rule and detection frames the pooled-evidence tests share;
and anomaly alerts (firing at a minute, resolved at another) that the folding tests build by hand."""

from __future__ import annotations

from typing import Any

import polars as pl

from tunewatch.alert.model import Alert
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


def anomaly_alert(name: str, metric: str, dims: dict[str, str], value: float, expected: float, minute: int,
                  **extra: Any) -> Alert:  # fmt: skip
    """An anomaly alert of rule ``name`` on slice ``dims`` firing at minute ``minute`` (after T0), started the minute
    before, with its value and expected value (and ``extra`` explanation fields, such as ``score``)."""
    labels = {"alertname": name, "severity": "warning", "metric": metric, **dims}
    fields = {"rule_kind": "anomaly", "fired_at": T0 + (minute + 1) * MINUTE, "value": value, "expected": expected,
              **extra}  # fmt: skip
    return Alert(labels=labels, annotations={"summary": name}, status="firing", starts_at=T0 + minute * MINUTE,
                 extra=fields)  # fmt: skip


def resolved_at(a: Alert, minute: int) -> Alert:
    """Alert ``a`` resolved at minute ``minute`` (after T0)."""
    at = T0 + minute * MINUTE
    return Alert(labels=a.labels, annotations=a.annotations, status="resolved", starts_at=a.starts_at, ends_at=at,
                 extra={**a.extra, "resolved_at": at})  # fmt: skip
