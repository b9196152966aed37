"""Per-rule backtest scores, the backtest table, and the self-contained HTML plot of a series."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from rich.console import Console

from tunewatch.alert.model import Alert
from tunewatch.alert.rules import parse_rules
from tunewatch.cli.render import print_backtest
from tunewatch.detect.stage import DETECTION_SCHEMA
from tunewatch.errors import InputError
from tunewatch.evaluate.backtest import Incident, per_rule, score
from tunewatch.evaluate.plot import SeriesRecorder, alert_series, parse_series_selector, write_backtest_plot
from tunewatch.pipeline.core import PipelineCounters
from tunewatch.pipeline.replay import ReplaySummary

T0 = 1_767_571_200_000
MIN = 60_000

RULES = """
groups:
  - name: g
    rules:
      - {alert: FailuresUp, metric: failure_rate, dimensions: [market, "market,cdn"]}
      - {alert: StreamsSurge, metric: streams, dimensions: [market]}
      - {alert: Quiet, metric: plays}
"""


def _alert(name: str, start_min: int, fired_min: int, end_min: int, **dims: str) -> list[Alert]:
    labels = {"alertname": name, "metric": "failure_rate" if name == "FailuresUp" else "streams", **dims}
    extra = {"fired_at": T0 + fired_min * MIN}
    firing = Alert(labels, {"summary": f"{name} <b>"}, "firing", T0 + start_min * MIN, extra=extra)
    resolved = Alert(labels, {}, "resolved", T0 + start_min * MIN, T0 + end_min * MIN, extra=extra)
    return [firing, resolved]


ALERTS = [
    *_alert("FailuresUp", 60, 62, 90, market="BR", cdn="edge-2"),  # detects the outage after 2 minutes
    *_alert("FailuresUp", 61, 64, 85, market="BR"),  # collateral: during the outage, on other dims
    *_alert("FailuresUp", 300, 302, 310, market="DE"),  # false
    *_alert("StreamsSurge", 500, 503, 520, market="JP"),  # detects the bot farm after 3 minutes
]
INCIDENTS = [
    Incident("cdn_outage", {"market": "BR", "cdn": "edge-2"}, T0 + 60 * MIN, T0 + 90 * MIN),
    Incident("bot_farm", {"market": "JP"}, T0 + 500 * MIN, T0 + 530 * MIN),
    Incident("ad_server_failure", {}, T0 + 900 * MIN, T0 + 930 * MIN),
]


def test_per_rule_precision_recall_and_time_to_detect() -> None:
    scores = {s.rule: s for s in per_rule(ALERTS, ["FailuresUp", "StreamsSurge", "Quiet"], INCIDENTS)}
    fail, surge, quiet = scores["FailuresUp"], scores["StreamsSurge"], scores["Quiet"]
    assert (fail.alerts, fail.firing_ms) == (3, (30 + 24 + 10) * MIN)
    assert (fail.right, fail.collateral, fail.false) == (1, 1, 1)
    assert fail.precision == pytest.approx(1 / 3) and fail.recall == pytest.approx(1 / 3)
    assert fail.median_time_to_detect_s == 120
    assert (surge.alerts, surge.precision, surge.detected, surge.median_time_to_detect_s) == (1, 1.0, 1, 180)
    assert (quiet.alerts, quiet.precision, quiet.recall, quiet.median_time_to_detect_s) == (0, None, 0.0, None)
    # without labels: counts and firing time only
    plain = per_rule(ALERTS, ["FailuresUp"])[0]
    assert (plain.alerts, plain.right, plain.collateral, plain.false, plain.recall) == (3, 0, 0, 0, None)


def test_collateral_alerts_are_not_right_and_not_false() -> None:
    report = score(ALERTS, INCIDENTS, span_ms=1440 * MIN)
    assert (report.firing, report.right, len(report.collateral), len(report.false_alerts)) == (4, 2, 1, 1)
    assert report.collateral[0].labels["market"] == "BR" and "cdn" not in report.collateral[0].labels
    assert report.false_alerts[0].labels["market"] == "DE"
    assert report.precision == pytest.approx(2 / 4)  # collateral and false alerts both lower it
    assert report.collateral_per_incident == pytest.approx(1 / 3)
    assert report.false_per_day == pytest.approx(1.0) and report.false_groups == 1
    assert report.median_time_to_detect_s == 150  # 120 s and 180 s


def test_backtest_tables_fit_an_80_column_terminal() -> None:
    rules = parse_rules(RULES.replace("Quiet", "RecommendationAcceptanceDown"))
    names = ["FailuresUp", "StreamsSurge", "RecommendationAcceptanceDown"]
    summary = ReplaySummary(counters=PipelineCounters(), seconds=1.0, files=["x"], alerts=ALERTS)
    buf = io.StringIO()
    print_backtest(Console(file=buf, width=80), rules, summary, score(ALERTS, INCIDENTS, span_ms=1440 * MIN))
    text = buf.getvalue()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text.replace("… and", "")  # nothing cut short
    for name in names:
        assert re.search(rf"^{name}\s", text, re.M), name  # every rule name whole, on its own row
    assert "market=BR, cdn=edge-2" in text.replace("\n", "")


def test_backtest_table_shows_per_rule_scores() -> None:
    summary = ReplaySummary(counters=PipelineCounters(), seconds=1.0, files=["x"], alerts=ALERTS)
    report = score(ALERTS, INCIDENTS, span_ms=1440 * MIN)
    buf = io.StringIO()
    print_backtest(Console(file=buf, width=200), parse_rules(RULES), summary, report)
    text = buf.getvalue()
    row = next(line for line in text.splitlines() if "FailuresUp" in line and "failure_rate" in line)
    assert re.search(r"3\s+64m\s+1\s+1\s+1\s+1/3\s+120 s", row)
    assert "recall 67%" in text and "false alerts 1" in text and "collateral 1" in text


def test_a_right_alert_after_the_detection_window_is_late_not_detected() -> None:
    slow = _alert("FailuresUp", 60, 68, 90, market="BR", cdn="edge-2")  # notified 8 minutes in
    stray = _alert("FailuresUp", 110, 112, 120, market="BR", cdn="edge-2")  # after the outage and its grace
    report = score([*slow, *stray], INCIDENTS[:1], span_ms=1440 * MIN)
    (res,) = report.incidents
    assert (res.detected_by, res.time_to_detect_s) == (None, None)
    assert (res.late_by, res.late_s, report.late, report.recall) == ("FailuresUp", 480.0, 1, 0.0)
    wider = score(slow, INCIDENTS[:1], span_ms=1440 * MIN, detect_within_ms=10 * MIN)
    assert (wider.incidents[0].time_to_detect_s, wider.late, wider.recall) == (480.0, 0, 1.0)
    never = score(stray, INCIDENTS[:1], span_ms=1440 * MIN)  # fired after end + grace: neither
    assert (never.incidents[0].late_by, never.late) == (None, 0)


def test_backtest_table_shows_late_detections() -> None:
    alerts = _alert("FailuresUp", 60, 68, 90, market="BR", cdn="edge-2")
    summary = ReplaySummary(counters=PipelineCounters(), seconds=1.0, files=["x"], alerts=alerts)
    buf = io.StringIO()
    print_backtest(Console(file=buf, width=80), parse_rules(RULES), summary, score(alerts, INCIDENTS, span_ms=MIN))
    text = buf.getvalue()
    row = next(line for line in text.splitlines() if line.startswith("cdn_outage"))
    assert re.search(r"FailuresUp\s+8m late$", row), row
    assert "(0/3 on the right dimension within 5 min, 1 more later)" in text.replace("\n", " ")


def _detections() -> pl.DataFrame:
    rows: list[dict[str, Any]] = []
    for i in range(180):
        high = 60 <= i < 90
        for dimset, dims in (("market", {"market": "BR"}), ("market,cdn", {"market": "BR", "cdn": "edge-2"})):
            rows.append(
                {"window_start": T0 + i * MIN, "metric": "failure_rate", "sid": len(dims), "dimset": dimset, **dims,
                 "value": 0.3 if high else 0.01, "weight": 100.0, "expected": 0.01, "lower": 0.0, "upper": 0.03,
                 "score": 0.9 if high else 0.0}
            )  # fmt: skip
    return pl.DataFrame(rows, schema=DETECTION_SCHEMA)


def test_plot_is_self_contained_html_with_value_band_and_alerts(tmp_path: Path) -> None:
    out = tmp_path / "plot.html"
    drawn = write_backtest_plot(out, _detections(), ALERTS, None)
    assert drawn == "failure_rate{market=BR, cdn=edge-2}"  # default: the first alert's series
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>") and "<svg" in page
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert page.count("<polyline") == 2  # value and expected
    assert page.count('fill="#9ecae1"') == 1  # the band
    assert page.count('fill="#d62728"') == 1  # one alert on this series (the market=BR one is another series)
    assert "FailuresUp &lt;b&gt;" in page  # annotations are escaped
    other = write_backtest_plot(out, _detections(), ALERTS, 'failure_rate{market="BR"}')
    assert other == 'failure_rate{market="BR"}' and out.read_text(encoding="utf-8").count('fill="#d62728"') == 1


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ("nope{market=BR}", "unknown metric"),
        ("failure_rate{colour=red}", "not a dimension"),
        ("failure_rate{market}", "not field=value"),
        ("failure_rate{market=XX}", "no data"),
    ],
)
def test_plot_selector_errors(tmp_path: Path, selector: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        write_backtest_plot(tmp_path / "p.html", _detections(), ALERTS, selector)


def test_plot_needs_an_alert_or_a_series(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="pass --series"):
        write_backtest_plot(tmp_path / "p.html", _detections(), [], None)


def test_recorder_keeps_only_the_selected_series() -> None:
    recorder = SeriesRecorder("failure_rate{market=BR}")
    recorder(None, _detections())  # type: ignore[arg-type]
    frame = recorder.frame()
    assert frame.height == 180 and set(frame.get_column("dimset").to_list()) == {"market"}
    assert parse_series_selector("streams") == ("streams", {})
    assert alert_series(ALERTS[0]) == "failure_rate{market=BR, cdn=edge-2}"
