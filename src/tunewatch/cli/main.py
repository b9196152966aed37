"""The ``tunewatch`` command line: a thin shell over library calls (typer + rich)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tunewatch import __version__
from tunewatch.errors import TunewatchError

app = typer.Typer(
    name="tunewatch",
    help="Anomaly detection and alerting for music-streaming events.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
rules_app = typer.Typer(help="Work with alert rule files.", no_args_is_help=True)
app.add_typer(rules_app, name="rules")

console = Console(stderr=True)
out = Console()


DETECTOR = Annotated[
    str, typer.Option("--detector", help="Detector behind anomaly rules: robust (default) or ensemble.")
]


def pipeline_detector(name: str) -> Any:
    """The detector factory called ``name`` (a one-line error for an unknown one)."""
    from tunewatch.detect.stage import PIPELINE_DETECTORS

    if name not in PIPELINE_DETECTORS:
        fail(f"--detector: unknown detector {name!r} (known: {', '.join(PIPELINE_DETECTORS)})")
    return PIPELINE_DETECTORS[name]


VALIDATION_RULES = Annotated[
    Path | None,
    typer.Option("--validation-rules", help="Custom business rules for validation (YAML; see docs/validation.md)."),
]


def fail(message: str, code: int = 2) -> NoReturn:
    """Print a one-line error and exit non-zero."""
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn tunewatch errors into one-line messages (no traceback)."""
    try:
        yield
    except TunewatchError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted", 130)


def _version(value: bool) -> None:
    if value:
        out.print(f"tunewatch {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """tunewatch: validate, aggregate, detect and alert on music-streaming events."""


@app.command()
def replay(
    events: Annotated[list[Path], typer.Argument(help="Event files (NDJSON, CSV, Parquet; .gz/.zst ok).")],
    rules: Annotated[Path | None, typer.Option(help="Rule file (YAML); default: the built-in pack.")] = None,
    alerts_out: Annotated[
        Path | None, typer.Option("--alerts-out", help="Write alert state changes here (NDJSON).")
    ] = None,
    quarantine_out: Annotated[
        Path | None, typer.Option("--quarantine-out", help="Write rejected events with reasons here (NDJSON).")
    ] = None,
    quarantine_db: Annotated[
        Path | None,
        typer.Option("--quarantine-db", help="Keep rejected events (raw bytes, reasons) in this SQLite quarantine."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    validation_rules: VALIDATION_RULES = None,
    detector: DETECTOR = "robust",
    profile: Annotated[
        Path | None, typer.Option(help="Profile the replay (pyinstrument): .html, .json (speedscope) or .txt.")
    ] = None,
) -> None:
    """Replay event files in event time as fast as possible; write alerts (firing and resolved)."""
    from tunewatch.alert.rules import load_rules
    from tunewatch.cli.render import print_replay_summary
    from tunewatch.ingest.readers import read_events
    from tunewatch.pipeline.core import Pipeline
    from tunewatch.pipeline.replay import replay_files

    with user_errors():
        ruleset = load_rules(rules)
        for p in events:  # fail fast, before any output, on unusable input
            next(iter(read_events(p)), None)
        total = sum(p.stat().st_size for p in events)
        with contextlib.ExitStack() as stack:
            a_out = stack.enter_context(alerts_out.open("wb")) if alerts_out else None
            q_out = stack.enter_context(quarantine_out.open("wb")) if quarantine_out else None
            progress = Progress(
                TextColumn("[bold]replay"),
                BarColumn(),
                TextColumn("{task.fields[events]:,} events"),
                TimeElapsedColumn(),
                console=console,
                disable=quiet or not console.is_terminal,
            )
            with progress:
                task = progress.add_task("replay", total=total, events=0)
                seen = 0

                def advance(n: int) -> None:
                    nonlocal seen
                    seen += n
                    progress.update(task, events=seen, completed=min(total, seen * max(1, total // max(seen, 1))))

                if profile is not None:
                    from tunewatch.monitor.profiling import profile_to

                    stack.enter_context(profile_to(profile))
                pipeline = Pipeline(
                    ruleset, validation_rules=validation_rules, detector_factory=pipeline_detector(detector)
                )
                if quarantine_db is not None:
                    from tunewatch.store.quarantine import QuarantineStore

                    store = stack.enter_context(contextlib.closing(QuarantineStore(quarantine_db)))
                    pipeline.on_rejected = store.add
                summary = replay_files(
                    events, ruleset, alerts_out=a_out, quarantine_out=q_out, progress=advance, pipeline=pipeline
                )
        print_replay_summary(out, summary)
        if profile is not None:
            out.print(f"profile: {profile}")


@app.command()
def backtest(
    events: Annotated[list[Path], typer.Argument(help="Event files to replay.")],
    rules: Annotated[Path | None, typer.Option(help="Rule file (YAML); default: the built-in pack.")] = None,
    labels: Annotated[Path | None, typer.Option(help="Labels file with incidents (from `simulate`).")] = None,
    alerts_out: Annotated[Path | None, typer.Option("--alerts-out", help="Also write the alerts (NDJSON).")] = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write an HTML plot (value, expected band, alerts) of one series.")
    ] = None,
    series: Annotated[
        str | None,
        typer.Option("--series", help='Series to plot, e.g. "failure_rate{market=BR}"; default: the first alert\'s.'),
    ] = None,
    detector: DETECTOR = "robust",
    validation_rules: VALIDATION_RULES = None,
) -> None:
    """Show when each rule would have fired on history; with --labels, precision, recall and time to detect."""
    from tunewatch.alert.backtest import load_labels, score
    from tunewatch.alert.plot import SeriesRecorder, write_backtest_plot
    from tunewatch.alert.rules import load_rules
    from tunewatch.cli.render import print_backtest
    from tunewatch.pipeline.core import Pipeline
    from tunewatch.pipeline.replay import replay_files

    with user_errors():
        ruleset = load_rules(rules)
        incidents = load_labels(labels) if labels else None
        recorder = SeriesRecorder(series) if plot else None
        pipeline = Pipeline(
            ruleset,
            on_metrics=recorder,
            validation_rules=validation_rules,
            detector_factory=pipeline_detector(detector),
        )
        with contextlib.ExitStack() as stack:
            a_out = stack.enter_context(alerts_out.open("wb")) if alerts_out else None
            with console.status("replaying history…"):
                summary = replay_files(events, ruleset, alerts_out=a_out, pipeline=pipeline)
        report = None
        if incidents is not None:
            span = max(1, summary.counters.windows) * 60_000
            report = score(summary.alerts, incidents, span_ms=span)
        print_backtest(out, ruleset, summary, report)
        if plot is not None and recorder is not None:
            shown = write_backtest_plot(plot, recorder.frame(), summary.alerts, series)
            out.print(f"plot of {shown} written to {plot}")


@rules_app.command("check")
def rules_check(file: Annotated[Path, typer.Argument(help="Rule file to validate.")]) -> None:
    """Validate a rule file; print its rules or the errors with their location."""
    from tunewatch.alert.rules import load_rules

    with user_errors():
        ruleset = load_rules(file)
    table = Table(title=f"{file}: {len(ruleset.rules)} rules OK")
    for col in ("group", "alert", "kind", "metric", "dimensions", "for"):
        table.add_column(col)
    for g in ruleset.groups:
        for r in g.rules:
            table.add_row(g.name, r.alert, r.kind, r.metric, ", ".join(r.dimensions), f"{r.for_ms // 1000}s")
    out.print(table)


def _register_optional() -> None:
    """Commands contributed by other modules (registered only when present)."""
    for module, attr, name in (
        ("tunewatch.cli.simulate_cmd", "simulate", "simulate"),
        ("tunewatch.cli.serve_cmd", "serve", "serve"),
        ("tunewatch.cli.serve_cmd", "run", "run"),
    ):
        with contextlib.suppress(ImportError, AttributeError):
            app.command(name)(getattr(__import__(module, fromlist=[attr]), attr))
    for module, attr, name in (
        ("tunewatch.cli.bench_cmd", "app", "bench"),
        ("tunewatch.cli.silence_cmd", "app", "silences"),
        ("tunewatch.cli.quarantine_cmd", "app", "quarantine"),
        ("tunewatch.cli.keys_cmd", "app", "keys"),
        ("tunewatch.cli.dashboards_cmd", "app", "dashboards"),
        ("tunewatch.cli.metadata_cmd", "app", "metadata"),
        ("tunewatch.cli.audit_cmd", "app", "audit"),
        ("tunewatch.cli.distributed_cmd", "app", "cluster"),
    ):
        with contextlib.suppress(ImportError, AttributeError):
            app.add_typer(getattr(__import__(module, fromlist=[attr]), attr), name=name)


_register_optional()


def run() -> None:
    """Console-script entry point."""
    app(prog_name="tunewatch")


if __name__ == "__main__":
    run()
