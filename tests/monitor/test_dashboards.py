"""Grafana dashboards: valid JSON models whose PromQL only names metrics tunewatch exports or records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from tests.monitor.conftest import DEPLOY, METRIC_NAME, promql_of, scrape
from tunewatch.cli.main import app
from tunewatch.detect.stage import DETECTION_SCHEMA
from tunewatch.monitor import PrometheusMetricsManager
from tunewatch.monitor.dashboards import dashboards, provisioning, render
from tunewatch.pipeline.core import Pipeline

_PROMETHEUS_OWN = {"ALERTS", "up"}


def _rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((DEPLOY / "prometheus" / "rules.yml").read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


@pytest.fixture
def exported(pipeline_run: tuple[PrometheusMetricsManager, Pipeline]) -> set[str]:
    """Every sample name of a populated exposition (plus an alert, which the small run does not raise)."""
    metrics, _ = pipeline_run

    class _Alert:
        labels = {"alertname": "StreamsDrop", "severity": "critical"}  # noqa: RUF012

    metrics.record_alerts([_Alert()])
    # and a point past the detectors' warm-up (the small run's series have no expected value yet)
    row = {"window_start": 2**42, "metric": "plays", "sid": 0, "dimset": "global", "value": 10.0, "weight": 10.0,
           "expected": 9.0, "lower": 5.0, "upper": 13.0, "score": 0.1}  # fmt: skip
    metrics.record_detection(pl.DataFrame([row], schema=DETECTION_SCHEMA), series=1, detectors=1)
    metrics.record_alert_change("firing", "StreamsDrop")
    return set(scrape(metrics))


def test_dashboards_are_valid_grafana_models() -> None:
    boards = dashboards()
    assert set(boards) == {f"tunewatch-{n}.json" for n in ("health", "business", "quality", "alerts", "series")}
    assert len({b["uid"] for b in boards.values()}) == 5
    for name, board in boards.items():
        assert isinstance(board["schemaVersion"], int) and board["schemaVersion"] >= 36, name
        assert board["templating"]["list"][0]["type"] == "datasource"
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), name
        cells: set[tuple[int, int]] = set()
        for p in board["panels"]:
            g = p["gridPos"]
            assert g["x"] >= 0 and g["x"] + g["w"] <= 24, (name, p["title"])
            area = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
            assert not area & cells, f"{name}: panel {p['title']!r} overlaps another"
            cells |= area
            if p["type"] != "row":
                refs = [t["refId"] for t in p["targets"]]
                assert refs and len(refs) == len(set(refs)), (name, p["title"])
        json.loads(render(board))  # serialisable


def test_every_metric_named_in_a_dashboard_is_exported_or_recorded(exported: set[str]) -> None:
    recorded = {r["record"] for r in _rules() if "record" in r}
    for name, board in dashboards().items():
        for expr in promql_of(board):
            names = set(METRIC_NAME.findall(expr))
            assert names or any(n in expr for n in _PROMETHEUS_OWN), f"{name}: no metric in {expr!r}"
            missing = {n for n in names if n not in exported and n not in recorded}
            assert not missing, f"{name}: {expr!r} names {sorted(missing)}, not in the exposition or rules.yml"


def test_every_metric_named_in_the_rules_is_exported(exported: set[str]) -> None:
    recorded = {r["record"] for r in _rules() if "record" in r}
    for rule in _rules():
        names = set(METRIC_NAME.findall(rule["expr"]))
        missing = {n for n in names if n not in exported and n not in recorded}
        assert not missing, f"rule {rule.get('record') or rule.get('alert')}: unknown {sorted(missing)}"
    alerts = {r["alert"] for r in _rules() if "alert" in r}
    assert {"TunewatchValidationSuccessLow", "TunewatchErrorRateHigh", "TunewatchDataStale"} <= alerts
    assert "TunewatchIngestLatencyHigh" in alerts


def test_committed_grafana_files_are_up_to_date() -> None:
    grafana = DEPLOY / "grafana"
    for name, board in dashboards().items():
        committed = (grafana / "dashboards" / name).read_text()
        assert committed == render(board), (
            f"deploy/grafana/dashboards/{name} is stale: run `tunewatch dashboards export`"
        )
    for rel, text in provisioning("/var/lib/grafana/dashboards/tunewatch", "http://prometheus:9090").items():
        assert (grafana / "provisioning" / rel).read_text() == text, rel


def test_cli_exports_dashboards_and_provisioning(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["dashboards", "export", str(tmp_path / "grafana")])
    assert result.exit_code == 0, result.output
    boards = sorted((tmp_path / "grafana" / "dashboards").glob("*.json"))
    assert [b.name for b in boards] == sorted(dashboards())
    assert all(json.loads(b.read_text())["panels"] for b in boards)
    provider = yaml.safe_load((tmp_path / "grafana" / "provisioning" / "dashboards" / "tunewatch.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == str((tmp_path / "grafana" / "dashboards").resolve())
    source = yaml.safe_load((tmp_path / "grafana" / "provisioning" / "datasources" / "tunewatch.yml").read_text())
    assert source["datasources"][0]["type"] == "prometheus"


def test_cli_refuses_a_file_as_directory(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    result = CliRunner().invoke(app, ["dashboards", "export", str(target)])
    assert result.exit_code == 2 and "not a directory" in result.output


def test_cli_lists_dashboards() -> None:
    result = CliRunner().invoke(app, ["dashboards", "list"])
    assert result.exit_code == 0 and "tunewatch-health.json" in result.output
