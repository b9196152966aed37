"""``tunewatch cluster publish`` / ``worker`` command lines (publish against a real redis-server)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from tests.cache.servers import RedisProcess, free_port
from tests.distributed.helpers import simulated_batches
from tests.notify.peers import HttpReceiver
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


@pytest.mark.integration
def test_worker_state_options_reach_the_checkpoints(redis_server: RedisProcess, tmp_path: Path) -> None:
    """A worker run saves its pipeline state with the checkpoint (the next worker restores it); with
    ``--no-checkpoint-state`` nothing is saved, and ``--max-state-mb`` below the blob's size saves none either."""
    import json

    events = tmp_path / "events.ndjson"
    pl.concat([b.frame for b in simulated_batches()]).head(2000).write_ndjson(events)
    common = ["--redis-url", redis_server.url, "--partitions", "0", "--exit-when-idle", "0.5", "--block", "100"]

    def run(prefix: str, *extra: str) -> dict[str, int]:
        result = runner.invoke(app, ["worker", *common, "--prefix", prefix, *extra])
        assert result.exit_code == 0, result.output
        return json.loads(result.output[result.output.index("{") :])  # type: ignore[no-any-return]

    for prefix in ("on", "off", "small"):
        published = runner.invoke(app, ["publish", str(events), "--partitions", "1", "--redis-url",
                                        redis_server.url, "--prefix", prefix])  # fmt: skip
        assert published.exit_code == 0, published.output
    first = run("on")
    assert first["state_bytes"] > 0 and first["states_restored"] == 0
    assert run("on")["states_restored"] == 1  # the next worker on the partition resumes the saved state
    assert run("off", "--no-checkpoint-state")["state_bytes"] == 0
    assert run("off")["states_restored"] == 0  # nothing was saved
    assert run("small", "--max-state-mb", "0.001")["state_bytes"] == 0


@pytest.mark.integration
def test_worker_notifies_through_the_same_composition_as_the_service(
    redis_server: RedisProcess, tmp_path: Path, http_receiver: HttpReceiver
) -> None:
    """The worker builds its alert side as the service does: changes go to its alert log and through the
    notification pipeline (a real webhook on loopback), muted by a silence in its database; not only to NDJSON."""
    import json
    import sqlite3

    from tests.server.rules import plays_seen_rules
    from tunewatch.cli.silence_cmd import app as silences

    events = tmp_path / "events.ndjson"
    frame = pl.concat([b.frame for b in simulated_batches()])
    frame.head(6000).write_ndjson(events)
    markets = sorted(set(frame.head(6000).get_column("market").drop_nulls().to_list()))
    muted = markets[0]
    rules = tmp_path / "rules.yaml"
    rules.write_text(plays_seen_rules(dimensions="market"))
    db = tmp_path / "worker.db"
    added = runner.invoke(silences, ["add", f"market={muted}", "-c", "drill", "-d", "999h", "--db", str(db)],
                          env={"TUNEWATCH_MAX_SILENCE": "10000h"})  # fmt: skip
    assert added.exit_code == 0, added.output
    notify = tmp_path / "notify.yaml"
    hook = f"{http_receiver.url}/hook"
    notify.write_text("route: {receiver: hook, group_by: [market], group_wait: 0s}\n"
                      f"receivers: [{{name: hook, webhook_configs: [{{url: '{hook}'}}]}}]\n")  # fmt: skip
    published = runner.invoke(app, ["publish", str(events), "--partitions", "1", "--redis-url",
                                     redis_server.url, "--prefix", "notify"])  # fmt: skip
    assert published.exit_code == 0, published.output
    result = runner.invoke(app, ["worker", "--redis-url", redis_server.url, "--partitions", "0", "--prefix",
                                 "notify", "--exit-when-idle", "0.5", "--block", "100", "--rules", str(rules),
                                 "--notify-config", str(notify), "--db", str(db),
                                 "--alerts-out", str(tmp_path / "alerts.ndjson")])  # fmt: skip
    assert result.exit_code == 0, result.output
    written = [json.loads(line) for line in (tmp_path / "alerts.ndjson").read_text().splitlines()]
    fired = {a["labels"]["market"] for a in written if a["status"] == "firing"}
    assert len(fired) > 1 and muted in fired
    with sqlite3.connect(db) as conn:
        logged = conn.execute("SELECT COUNT(*) FROM alert_log WHERE alert IS NOT NULL").fetchone()[0]
    assert logged == len(written)  # each change once, in the worker's alert log
    notified = {a["labels"]["market"] for r in http_receiver.received for a in r.body["alerts"]}
    assert notified == fired - {muted}  # delivered by the notifier (the stop runs a last flush), silence applied
