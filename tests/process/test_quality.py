"""Data-quality KPIs per window: every received event booked, rates and alerts on them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import polars as pl

from tests.conftest import BASE_MS
from tunewatch.pipeline.core import Pipeline
from tunewatch.process import MusicDataProcessor
from tunewatch.validate import EnterpriseDataValidator

MIN = 60_000


def _global(result: Any) -> pl.DataFrame:
    return result.metrics.filter(pl.col("dimset") == "global").sort("window_start")


def test_kpis_account_for_every_received_event(play: Callable[..., dict[str, Any]]) -> None:
    events: list[Any] = [play(i, BASE_MS + i * 1000) for i in range(50)]
    events += [play(i, BASE_MS + i * 1000) for i in range(5)]  # 5 duplicates
    events += [play(100 + i, BASE_MS + i * 1000, market="XX") for i in range(3)]  # 3 rejected
    valid = EnterpriseDataValidator().validate(events)
    row = _global(MusicDataProcessor().process(valid)).row(0, named=True)
    assert row["events_received"] == 58
    assert row["events_rejected"] == 3
    assert row["duplicates"] == 5
    assert abs(row["validation_success_rate"] - 50 / 58) < 1e-9
    assert abs(row["duplicate_rate"] - 5 / 58) < 1e-9
    assert row["error_rate"] == 0
    assert row["freshness_lag_s"] is None  # no wall clock given (replay)


def test_undecodable_lines_count_as_errors_and_a_window_of_only_rejects_still_reports() -> None:
    lines = b"\n".join([b"{not json", b"\xff\xfe", b'{"event_id": 1']) + b"\n"
    processor = MusicDataProcessor()
    validator = EnterpriseDataValidator()
    first = processor.process(validator.validate(lines), final=True)
    assert first.metrics.is_empty()  # no event time to book them to: nothing seen yet
    ok = validator.validate([{"event_id": "x1", "ts": BASE_MS, "event_type": "ad", "user_id": "u", "market": "BR",
                              "platform": "web", "tier": "free", "ad_revenue_micros": 1000}])  # fmt: skip
    bad = validator.validate(lines)
    processor.process(ok, final=False)
    out = _global(processor.process(bad, final=True))
    row = out.row(0, named=True)
    assert row["events_received"] == 4 and row["events_rejected"] == 3
    assert abs(row["error_rate"] - 0.75) < 1e-9


def test_live_mode_reports_freshness_lag(play: Callable[..., dict[str, Any]]) -> None:
    valid = EnterpriseDataValidator().validate([play(i, BASE_MS + i) for i in range(10)])
    processor = MusicDataProcessor()
    out = _global(processor.process(valid, now_s=BASE_MS / 1000 + 420))
    assert abs(out.item(0, "freshness_lag_s") - 420) < 1.0


def test_pipeline_raises_a_data_quality_alert_with_top_reasons(play: Callable[..., dict[str, Any]]) -> None:
    alerts: list[Any] = []
    pipe = Pipeline(on_alert=alerts.append)
    for minute in range(12):
        batch: list[Any] = [play(minute * 1000 + i, BASE_MS + minute * MIN + i * 100) for i in range(300)]
        if minute >= 3:  # a producer starts sending a broken market code for 5 % of events
            batch += [play(100_000 + minute * 100 + i, BASE_MS + minute * MIN + i, market="br") for i in range(16)]
        pipe.ingest(batch)
    pipe.finish()
    dq = [a for a in alerts if a.name == "ValidationSuccessLow" and a.status == "firing"]
    assert dq, [a.name for a in alerts]
    assert "market: unknown_country" in dq[0].annotations["top_rejection_reasons"]
    assert pipe.counters.balanced
