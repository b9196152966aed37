"""``tunewatch serve`` and ``tunewatch run``: the service on embedded defaults (no Redis or other server)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from tunewatch.cli.feedback import fail, user_errors
from tunewatch.cli.paths import text_input

if TYPE_CHECKING:
    from tunewatch.alert.model import Alert
    from tunewatch.simulate.live_clock import SimulatedClock

console = Console()


def print_alert(alert: Alert, when: str = "") -> None:
    """One console line per alert state change, with its explanation (data printed as text, never as markup).

    ``when`` prefixes the line (``run`` labels each change with its simulated time).
    """
    labels = escape(
        ", ".join(f"{k}={v}" for k, v in alert.labels.items() if k not in ("alertname", "severity", "team"))
    )
    ann = {k: escape(v) for k, v in alert.annotations.items()}
    name = escape(alert.name)
    prefix = f"[dim]{escape(when)}[/] " if when else ""
    if alert.status != "firing":
        console.print(f"{prefix}[bold green]RESOLVED[/] [bold]{name}[/] ({labels})", highlight=False)
        return
    risk = ann.get("revenue_at_risk_per_hour")
    extra = f"  [dim]revenue at risk {risk}/h[/]" if risk else ""
    console.print(f"{prefix}[bold red]FIRING[/]   [bold]{name}[/] ({labels})", highlight=False)
    console.print(f"         {ann.get('summary', '')}{extra}", highlight=False)
    details = {
        "top contributors": ann.get("top_contributors"),
        "top rejection reasons": ann.get("top_rejection_reasons"),
        "track": ann.get("track_name", "") + (f" by {ann['track_artists']}" if ann.get("track_artists") else ""),
    }
    for title, text in details.items():
        if text:
            console.print(f"         [dim]{title}: {text}[/]", highlight=False)


NOTIFY_CONFIG = Annotated[
    Path | None,
    typer.Option("--notify-config", help="Notification config (Alertmanager-shaped YAML: route, receivers)."),
]
NOTIFY_DB = Annotated[
    Path | None,
    typer.Option(
        "--notify-db",
        help="SQLite file for the notification log and undelivered sends "
        "(serve: the --db; run: $TUNEWATCH_HOME/run.db).",
    ),
]
DB = Annotated[
    Path | None,
    typer.Option(
        "--db",
        envvar="TUNEWATCH_DB",
        help="SQLite file keeping alerts, silences, API keys and the quarantine across restarts "
        "(default: $TUNEWATCH_HOME/tunewatch.db; :memory: keeps nothing).",
    ),
]
# proxy headers are applied by the app itself, only from --forwarded-allow-ips (uvicorn trusts 127.0.0.1 by default)
UVICORN_PRODUCTION = {
    "http": "httptools", "loop": "uvloop", "access_log": False, "log_level": "warning", "proxy_headers": False,
}  # fmt: skip


def _alert_sink(clock: SimulatedClock | None = None) -> Callable[[Alert], None]:
    """Print every alert change; under ``run``'s simulated ``clock``, label it with its simulated time and say so in
    the alert's annotations (the notifier, the alert log and the API get the alert after this listener)."""
    from tunewatch.simulate.live_clock import ANNOTATION as CLOCK_ANNOTATION  # lazy: `tunewatch --help` stays fast
    from tunewatch.simulate.live_clock import clock_note, sim_label

    def on_alert(alert: Alert) -> None:
        if clock is not None:
            alert.annotations[CLOCK_ANNOTATION] = clock_note(clock)
        print_alert(alert, sim_label(clock()) if clock is not None else "")

    return on_alert


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8787,
    rules: Annotated[Path | None, typer.Option(help="Rule file (YAML); default: the built-in pack.")] = None,
    notify_config: NOTIFY_CONFIG = None,
    notify_db: NOTIFY_DB = None,
    db: DB = None,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(
            "--forwarded-allow-ips",
            help="Proxies (addresses/networks, comma-separated) whose X-Forwarded-For is trusted (default: none).",
        ),
    ] = None,
    allowed_hosts: Annotated[
        str | None,
        typer.Option(
            "--allowed-hosts", help="Host header values served, comma-separated; '*' for any (default: loopback names)."
        ),
    ] = None,
) -> None:
    """Run the HTTP service: ingest, alerts, silences, rules, series, quarantine, console at /, /metrics, /healthz."""
    import uvicorn

    from tunewatch.server.alerting import database
    from tunewatch.server.runtime import build_runtime
    from tunewatch.server.settings import process_settings

    with user_errors():
        settings = process_settings(
            "serve", db=db, notify_db=notify_db, forwarded_allow_ips=forwarded_allow_ips, allowed_hosts=allowed_hosts,
            rules=text_input(rules, "rule file") if rules else None, served_url=f"http://{host}:{port}",
            notify_config=text_input(notify_config, "notification config") if notify_config else None,
        )  # fmt: skip
        runtime = build_runtime(settings)
        runtime.on_alert(_alert_sink())
        app = runtime.app()
    console.print(f"tunewatch serving on http://{host}:{port}  (console: /, API docs: /docs, metrics: /metrics)")
    console.print(Text(f"database: {database(settings)}  (`tunewatch silences` uses it too; "
                       f"TUNEWATCH_URL=http://{host}:{port} makes it talk to this service instead)"),
                  highlight=False, soft_wrap=True)  # fmt: skip
    try:
        uvicorn.run(app, host=host, port=port, **UVICORN_PRODUCTION)  # type: ignore[arg-type]
    finally:
        runtime.close()


def run(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8787,
    speed: Annotated[
        float, typer.Option(help="Simulated minutes per wall-clock second (at most: the clock waits for the data).")
    ] = 2.0,
    rate: Annotated[int, typer.Option(help="Simulated events per minute (average).")] = 1500,
    warmup: Annotated[int, typer.Option(help="Simulated minutes before the first incident.")] = 20,
    spacing: Annotated[int, typer.Option(min=10, help="Simulated minutes between incident starts.")] = 30,
    seed: Annotated[int, typer.Option(help="Random seed of the simulated stream.")] = 7,
    duration: Annotated[float | None, typer.Option(help="Stop after this many wall-clock seconds.")] = None,
    no_http: Annotated[bool, typer.Option("--no-http", help="Do not start the HTTP service.")] = False,
    notify_config: NOTIFY_CONFIG = None,
    notify_db: NOTIFY_DB = None,
) -> None:
    """Serve, plus a simulated live stream (time compressed) with incidents; print alerts as they change.

    The service runs on a SIMULATED clock, --speed simulated minutes per wall-clock second, starting --warmup
    minutes before now. On the simulated clock: event and alert times, rule 'for' and 'keep_firing_for', absence
    rules, silences created through the API or console (a 2h silence lasts 2h of simulated time) and the
    data-freshness lag (DataStale): simulated time waits for the simulated data when the host stalls, so a
    stall is not stale data. Alert lines, alert annotations (simulated_clock), notifications and /healthz say the
    times are simulated. On the WALL clock: notifications (--notify-config): group_wait, group_interval,
    repeat_interval and retries are real time, and queued notifications survive a restart on the same --notify-db.
    """
    from tunewatch.server.runtime import build_runtime
    from tunewatch.server.settings import process_settings
    from tunewatch.simulate import SimulationConfig, Simulator
    from tunewatch.simulate.live_clock import SimulatedClock, feed, sim_label

    if speed <= 0:
        fail("--speed must be positive")
    minutes = 7 * 24 * 60
    sim_start_ms = int(time.time() * 1000) // 60_000 * 60_000 - warmup * 60_000
    sim_clock = SimulatedClock(sim_start_ms / 1000 + 60, speed=speed)  # at the end of the first minute

    config = SimulationConfig(
        start=sim_start_ms,
        minutes=minutes,
        seed=seed,
        events_per_minute=rate,
        warmup_minutes=warmup,
        incident_spacing_minutes=spacing,
    )
    simulator = Simulator(config)
    with user_errors():
        # notifications keep wall-clock time: their schedule (stored instants) survives a restart, and the
        # config's group_wait / group_interval / repeat_interval mean what they say
        settings = process_settings(
            "run", notify_db=notify_db, served_url=None if no_http else f"http://{host}:{port}",
            notify_config=text_input(notify_config, "notification config") if notify_config else None,
        )  # fmt: skip
        runtime = build_runtime(settings, clock=sim_clock, notify_max_sleep_s=0.5)
    runtime.on_alert(_alert_sink(sim_clock))
    service = runtime.service
    stop = threading.Event()

    def feed_service() -> None:
        from tunewatch.ingest.batch import RawBatch, conform

        blocks = simulator.blocks(minutes_per_block=1)
        ingest = service.ingest
        feed(sim_clock, blocks, lambda b: ingest(RawBatch(frame=conform(b), source="simulator")), stop,
             first_end_s=sim_start_ms / 1000 + 60)  # fmt: skip

    console.print(
        f"[bold]tunewatch run[/]: simulated stream at {rate:,} events/min, {speed:g} simulated min per second; "
        f"first incident after ~{warmup / speed:.0f} s. Ctrl-C to stop."
    )
    console.print(
        f"[yellow]simulated time[/]: every time shown here, in the console and in the API is simulated "
        f"(now {sim_label(sim_clock())}, {60 * speed:g}x faster than the wall clock; it waits for the data when "
        "the host stalls); silences, 'for' delays and data freshness run on it too; notifications keep the wall clock",
        highlight=False,
    )
    for inc in simulator.incidents[:7]:
        console.print(
            f"  scheduled incident: {inc['kind']} {inc['dims'] or 'global'} at {inc['start']}", highlight=False
        )
    feeder = threading.Thread(target=feed_service, name="simulator", daemon=True)
    feeder.start()
    try:
        if no_http:
            deadline = None if duration is None else time.time() + duration
            while feeder.is_alive() and (deadline is None or time.time() < deadline):
                time.sleep(0.2)
        else:
            import uvicorn

            app = runtime.app(close_on_shutdown=False)  # closed below, once the feed has stopped
            server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, **UVICORN_PRODUCTION))  # type: ignore[arg-type]
            if duration is not None:
                threading.Timer(duration, lambda: setattr(server, "should_exit", True)).start()
            console.print(f"HTTP on http://{host}:{port} (console: /, alerts: /api/v1/alerts, metrics: /metrics)")
            server.run()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        feeder.join(timeout=30)  # the step in progress finishes before the stores close
        status, changes = service.status(), len(service.alert_history())
        runtime.close()
        console.print(
            f"stopped: {status['received']:,} events, {status['accepted']:,} accepted, {changes} alert changes"
        )
