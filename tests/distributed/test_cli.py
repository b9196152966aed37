"""``tunewatch cluster publish`` / ``worker`` command lines (publish against a real redis-server)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from tests.cache.servers import RedisProcess, free_port
from tests.distributed.helpers import simulated_batches
from tunewatch.cli.distributed_cmd import app
from tunewatch.distributed.connection import connect
from tunewatch.distributed.keys import KeyLayout

runner = CliRunner()


@pytest.mark.integration
def test_publish_command_reports_events_per_second(redis_server: RedisProcess, tmp_path: Path) -> None:
    events = tmp_path / "events.ndjson"
    pl.concat([b.frame for b in simulated_batches()]).head(3000).write_ndjson(events)
    with events.open("ab") as f:
        f.write(b"{broken json\n")
    result = runner.invoke(app, ["publish", str(events), "--partitions", "2", "--batch-size", "500",
                                 "--redis-url", redis_server.url, "--prefix", "cli"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "published 3,001 events" in result.output and "events/s" in result.output
    client = connect(redis_server.url)
    layout = KeyLayout("cli")
    total = sum(int(f[b"n"]) for p in range(2) for _id, f in client.xrange(layout.stream(p)))
    assert total == 3001  # the undecodable line travels too (partition 0), to be counted as rejected


def test_worker_rejects_a_malformed_partition_list() -> None:
    result = runner.invoke(app, ["worker", "--partitions", "0,x", "--redis-url", "redis://127.0.0.1:1/0"])
    assert result.exit_code == 2
    assert "--partitions: '0,x' is not a comma-separated list" in result.output


def test_worker_reports_an_unreachable_redis_in_one_line() -> None:
    port = free_port()
    result = runner.invoke(app, ["worker", "--partitions", "0", "--redis-url", f"redis://127.0.0.1:{port}/0"])
    assert result.exit_code == 3
    assert "error: redis: ConnectionError" in result.output and "Traceback" not in result.output
