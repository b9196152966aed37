"""``tunewatch cluster``: distributed mode — ``publish`` event files to partition streams, run a ``worker``.

Both connect to a single Redis (``--redis-url``) or a Redis Cluster (``--cluster-node host:port``, repeatable).
See ``docs/distributed.md``.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Annotated

import typer
from rich.console import Console

from tunewatch.cli.feedback import print_error
from tunewatch.cli.paths import output_path, text_input
from tunewatch.errors import TunewatchError

app = typer.Typer(name="cluster", help="Distributed mode: publish events to Redis Streams and run workers.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)  # fmt: skip
out = Console()
err = Console(stderr=True)

RedisUrl = Annotated[
    str | None, typer.Option("--redis-url", envvar="TUNEWATCH_REDIS_URL", help="redis://host:port/db (one server).")
]
ClusterNodes = Annotated[
    list[str] | None,
    typer.Option("--cluster-node", help="Redis Cluster seed node host:port (repeatable); selects cluster mode."),
]
Prefix = Annotated[str, typer.Option("--prefix", help="Key prefix shared by publishers and workers.")]


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    """One-line messages (no traceback) for usage, input and Redis errors."""
    try:
        yield
    except (TunewatchError, ValueError) as exc:
        print_error(str(exc))
        raise typer.Exit(2) from exc
    except Exception as exc:
        from tunewatch.cache.redis_errors import REDIS_ERRORS  # imported when needed: `--help` stays fast

        if not isinstance(exc, REDIS_ERRORS):
            raise
        print_error(f"redis: {type(exc).__name__}: {exc}")
        raise typer.Exit(3) from exc


def _parse_partitions(text: str | None) -> list[int] | None:
    if text is None or text.strip().lower() in ("", "all"):
        return None
    try:
        return sorted({int(p) for p in text.split(",") if p.strip()})
    except ValueError:
        raise ValueError(f"--partitions: {text!r} is not a comma-separated list of integers (e.g. 0,1)") from None


@app.command("publish")
def publish(
    events: Annotated[list[Path], typer.Argument(help="Event files (NDJSON, CSV, Parquet; .gz/.zst ok).")],
    partitions: Annotated[int, typer.Option("--partitions", "-p", min=1, help="Number of partition streams.")] = 4,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Events per stream entry.")] = 5000,
    maxlen: Annotated[int, typer.Option("--maxlen", min=1, help="Approximate MAXLEN of each stream (entries).")] = (
        1_000_000
    ),
    redis_url: RedisUrl = None,
    cluster_node: ClusterNodes = None,
    prefix: Prefix = "tw",
) -> None:
    """Read event files and XADD them, partitioned by market, to the partition streams."""
    from tunewatch.distributed.connection import connect
    from tunewatch.distributed.keys import KeyLayout
    from tunewatch.distributed.producer import Publisher
    from tunewatch.ingest.readers import read_events

    with _errors():
        client = connect(redis_url, cluster_node or ())
        publisher = Publisher(client, partitions, layout=KeyLayout(prefix), batch_size=batch_size, maxlen=maxlen)
        stats = publisher.publish(batch for path in events for batch in read_events(path))
        spread = ", ".join(f"p{p}={n:,}" for p, n in sorted(stats.per_partition.items()))
        out.print(f"published {stats.events:,} events in {stats.entries:,} entries ({stats.payload_bytes:,} bytes) "
                  f"to {partitions} partitions [{spread}] at {stats.events_per_s:,.0f} events/s",
                  highlight=False, soft_wrap=True, markup=False)  # fmt: skip


@app.command("worker")
def worker(
    partitions: Annotated[
        str | None, typer.Option("--partitions", help="Partitions to consume, e.g. 0,1 (default: all).")
    ] = None,
    group: Annotated[str, typer.Option("--group", help="Consumer group name.")] = "tunewatch",
    consumer: Annotated[str | None, typer.Option("--consumer", help="Consumer name (default: host-pid).")] = None,
    rules: Annotated[Path | None, typer.Option("--rules", help="Rule file (YAML); default: the built-in pack.")] = None,
    alerts_out: Annotated[
        Path | None, typer.Option("--alerts-out", help="Append the alerts this worker notifies here (NDJSON).")
    ] = None,
    notify_config: Annotated[
        Path | None,
        typer.Option("--notify-config", help="Notification config (Alertmanager-shaped YAML), as for `serve`."),
    ] = None,
    db: Annotated[
        Path | None,
        typer.Option(
            "--db",
            envvar="TUNEWATCH_DB",
            help="SQLite file of the worker's alert log, silences and notification log (default: memory).",
        ),
    ] = None,
    claim_idle: Annotated[
        int, typer.Option("--claim-idle", min=1, help="Claim entries pending longer than this (ms) from others.")
    ] = 30_000,
    block: Annotated[int, typer.Option("--block", min=1, help="Longest wait for new entries (ms).")] = 1000,
    read_count: Annotated[int, typer.Option("--read-count", min=1, help="Entries per read.")] = 10,
    checkpoint_every: Annotated[int, typer.Option("--checkpoint-every", min=1, help="Entries per checkpoint.")] = 50,
    exit_when_idle: Annotated[
        float | None, typer.Option("--exit-when-idle", help="Stop after this many seconds without entries.")
    ] = None,
    checkpoint_state: Annotated[
        bool,
        typer.Option(
            "--checkpoint-state/--no-checkpoint-state",
            help="Save the pipeline snapshot (detector, stream and alert state) with each checkpoint; a worker "
            "taking a partition over resumes it.",
        ),
    ] = True,
    checkpoint_ttl: Annotated[
        int | None,
        typer.Option("--checkpoint-ttl", min=1, help="Expiry of checkpoint records and state (ms; default: none)."),
    ] = None,
    max_state_mb: Annotated[
        float,
        typer.Option("--max-state-mb", min=0.001, help="Larger state blobs are not saved (takeover starts cold)."),
    ] = 128.0,
    notify_unscoped: Annotated[
        bool,
        typer.Option(
            "--notify-unscoped", help="Also notify alerts without a market label (exact only with 1 partition)."
        ),
    ] = False,
    hold_before_ack_after: Annotated[
        int | None, typer.Option("--hold-before-ack-after", hidden=True, help="Fault drill: hang before an XACK.")
    ] = None,
    redis_url: RedisUrl = None,
    cluster_node: ClusterNodes = None,
    prefix: Prefix = "tw",
) -> None:
    """Consume partitions in a consumer group until SIGTERM; print a JSON summary on exit."""
    from tunewatch.alert.model import Alert
    from tunewatch.alert.rules import load_rules
    from tunewatch.distributed.connection import connect
    from tunewatch.distributed.keys import KeyLayout
    from tunewatch.distributed.worker import Worker, WorkerConfig, default_consumer
    from tunewatch.server.alerting import build_alert_side
    from tunewatch.server.settings import process_settings

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with _errors(), contextlib.ExitStack() as stack:
        ruleset = load_rules(text_input(rules, "rule file") if rules else None)  # before connecting: fail fast
        config = WorkerConfig(
            group=group, consumer=consumer or default_consumer(), partitions=_parse_partitions(partitions),
            read_count=read_count, block_ms=block, claim_idle_ms=claim_idle, checkpoint_every=checkpoint_every,
            exit_when_idle_s=exit_when_idle, hold_before_ack_after=hold_before_ack_after,
            notify_unscoped=notify_unscoped, checkpoint_state=checkpoint_state, checkpoint_ttl_ms=checkpoint_ttl,
            max_state_bytes=int(max_state_mb * 1024 * 1024),
        )  # fmt: skip
        sink: IO[bytes] | None = (
            stack.enter_context(output_path(alerts_out, "alerts file").open("ab")) if alerts_out else None
        )

        # the same composition as the service's: one alert log, one silence store, the notification pipeline
        settings = process_settings(
            "worker", db=db, notify_config=text_input(notify_config, "notification config") if notify_config else None
        )
        alerts = build_alert_side(settings)
        stack.callback(alerts.close)
        if sink is not None:
            out_file = sink

            def append(alert: Alert) -> None:
                out_file.write(json.dumps(alert.to_dict(), separators=(",", ":")).encode() + b"\n")
                out_file.flush()

            alerts.listeners.append(append)

        client = connect(redis_url, cluster_node or (), timeout_s=max(5.0, 2 * block / 1000))
        w = Worker(client, config, rules=ruleset, notify=alerts.emit, layout=KeyLayout(prefix))
        stats = w.run()
        summary = {"consumer": config.consumer, "partitions": sorted(w.partitions), **stats.as_dict()}
        out.print(json.dumps(summary), highlight=False, soft_wrap=True, markup=False)


if __name__ == "__main__":
    app()
