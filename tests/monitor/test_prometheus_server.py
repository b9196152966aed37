"""End to end: a real Prometheus server scrapes tunewatch's exposition and evaluates deploy/prometheus/rules.yml."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import start_http_server

from tests.monitor.conftest import DEPLOY, METRIC_NAME, promql_of, scrape
from tunewatch.monitor import PrometheusMetricsManager
from tunewatch.monitor.dashboards import dashboards
from tunewatch.pipeline.core import Pipeline

PROMETHEUS = shutil.which("prometheus")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(PROMETHEUS is None, reason="prometheus not installed (Debian package `prometheus`)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def prometheus(
    tmp_path: Path, pipeline_run: tuple[PrometheusMetricsManager, Pipeline]
) -> Iterator[tuple[httpx.Client, PrometheusMetricsManager]]:
    """Our exposition on a loopback port, and Prometheus scraping it every second with the deploy rules."""
    metrics, _ = pipeline_run
    target_port, web_port = _free_port(), _free_port()
    server, _thread = start_http_server(target_port, addr="127.0.0.1", registry=metrics.registry)
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config.pop("alerting")
    job = config["scrape_configs"][0]
    job.update(scrape_interval="1s", scrape_timeout="1s")
    job["static_configs"][0]["targets"] = [f"127.0.0.1:{target_port}"]
    rules = yaml.safe_load((DEPLOY / "prometheus" / "rules.yml").read_text())
    for group in rules["groups"]:
        group["interval"] = "1s"
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    config["rule_files"] = [str(tmp_path / "rules.yml")]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    assert PROMETHEUS is not None
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{web_port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    client = httpx.Client(base_url=f"http://127.0.0.1:{web_port}", timeout=5)
    try:
        _wait(lambda: _ready(client), "Prometheus to be ready")
        yield client, metrics
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        server.shutdown()


def _ready(client: httpx.Client) -> bool:
    try:
        return client.get("/-/ready").status_code == 200
    except httpx.TransportError:
        return False


def _query(client: httpx.Client, expr: str) -> list[dict[str, Any]]:
    body = client.get("/api/v1/query", params={"query": expr}).json()
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def test_prometheus_scrapes_every_dashboard_metric_and_evaluates_the_rules(
    prometheus: tuple[httpx.Client, PrometheusMetricsManager],
) -> None:
    client, metrics = prometheus
    _wait(lambda: bool(_query(client, 'up{job="tunewatch"} == 1')), "a successful scrape")
    exported = set(scrape(metrics))
    names = {n for board in dashboards().values() for e in promql_of(board) for n in METRIC_NAME.findall(e)}
    for name in sorted(n for n in names if n in exported):
        assert _query(client, f"count({name})"), f"Prometheus has no series {name}"
    metrics.record_validation(received=1000, accepted=900, rejected={"market: unknown": 100}, duplicates=0)
    _wait(
        lambda: bool(_query(client, "tunewatch:validation_success:ratio_rate5m < 0.995")),
        "the recording rule to see the drop in validation success",
    )

    def all_rules_evaluated() -> bool:
        groups = client.get("/api/v1/rules").json()["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        return bool(rules) and all(r["health"] == "ok" for r in rules)

    _wait(all_rules_evaluated, "every rule to evaluate without error")
    alert = 'ALERTS{alertname="TunewatchValidationSuccessLow"}'
    _wait(lambda: bool(_query(client, alert)), "the self-alert to go pending")
    assert _query(client, alert)[0]["metric"]["alertstate"] == "pending"  # `for: 10m` has not elapsed
