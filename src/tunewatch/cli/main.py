"""The ``tunewatch`` command line: a thin shell over library calls (typer + rich)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from tunewatch.cli import (
    audit_cmd,
    bench_cmd,
    dashboards_cmd,
    distributed_cmd,
    keys_cmd,
    metadata_cmd,
    quarantine_cmd,
    serve_cmd,
    silence_cmd,
    simulate_cmd,
)
from tunewatch.cli.feedback import (
    OUTPUT,
    OutputFormat,
    console,
    fail,
    out,
    output_format,
    print_json,
    run_app,
    user_errors,
)
from tunewatch.cli.paths import is_stdio, open_output, output_path, text_input
from tunewatch.version import __version__

app = typer.Typer(
    name="tunewatch",
    help="Anomaly detection and alerting for music-streaming events.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
rules_app = typer.Typer(help="Work with alert rule files.", no_args_is_help=True)
app.add_typer(rules_app, name="rules")

__all__ = ["app", "console", "fail", "out", "run", "user_errors"]

DETECTOR = Annotated[
    str, typer.Option("--detector", help="Detector behind anomaly rules: robust (default) or ensemble.")
]


def check_detector(name: str) -> str:
    """``name`` if it is a pipeline detector (a one-line error for an unknown one)."""
    from tunewatch.errors import InputError
    from tunewatch.pipeline.replay_job import detector_factory

    try:
        detector_factory(name)
    except InputError as exc:
        fail(f"--detector: {exc}")
    return name


VALIDATION_RULES = Annotated[
    Path | None,
    typer.Option("--validation-rules", help="Custom business rules for validation (YAML; see docs/validation.md)."),
]


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
    events: Annotated[
        list[Path], typer.Argument(help="Event files (NDJSON, CSV, Parquet; .gz/.zst ok); - reads standard input.")
    ],
    rules: Annotated[Path | None, typer.Option(help="Rule file (YAML); default: the built-in pack.")] = None,
    alerts_out: Annotated[
        Path | None, typer.Option("--alerts-out", help="Write alert state changes here (NDJSON); - for stdout.")
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
    output: OUTPUT = "table",
) -> None:
    """Replay event files in event time as fast as possible; write alerts (firing and resolved)."""
    from tunewatch.cli.preflight import check_event_files
    from tunewatch.cli.render import print_replay_summary, replay_summary_json
    from tunewatch.pipeline.process_exit import collect_then_freeze_at_exit
    from tunewatch.pipeline.replay_job import ReplayJob

    collect_then_freeze_at_exit()  # this process ends with the replay: its exit need not scan the start-up objects
    fmt = output_format(output)
    with user_errors():
        _one_stdout(fmt, alerts_out=alerts_out, quarantine_out=quarantine_out)
        for target, what in ((alerts_out, "alerts file"), (quarantine_out, "quarantine file"),
                             (quarantine_db, "quarantine database"), (profile, "profile")):  # fmt: skip
            if target is not None:
                output_path(target, what)
        job = ReplayJob.from_files(
            rules=text_input(rules, "rule file") if rules else None, detector=check_detector(detector),
            validation_rules=text_input(validation_rules, "validation rule file") if validation_rules else None,
            quarantine_db=quarantine_db, profile=profile,
        )  # fmt: skip
        events = check_event_files(events)  # fail fast, before any output, on unusable input
        total = sum(p.stat().st_size for p in events)
        with contextlib.ExitStack() as stack:
            a_out = stack.enter_context(open_output(alerts_out)) if alerts_out else None
            q_out = stack.enter_context(open_output(quarantine_out)) if quarantine_out else None
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

                summary = job.run(events, alerts_out=a_out, quarantine_out=q_out, progress=advance)
        results = console if is_stdio(alerts_out) or is_stdio(quarantine_out) else out
        if fmt == "json":
            print_json(replay_summary_json(summary))
        else:
            print_replay_summary(results, summary)
        if profile is not None:
            console.print(Text(f"profile: {profile}"))
        _require_accepted(summary.counters.received, summary.counters.accepted)


def _one_stdout(fmt: OutputFormat, **files: Path | None) -> None:
    """At most one thing may be written to standard output."""
    to_stdout = [f"--{name.replace('_', '-')} -" for name, path in files.items() if is_stdio(path)]
    if fmt == "json":
        to_stdout.append("--output json")
    if len(to_stdout) > 1:
        fail(f"{' and '.join(to_stdout)} would both write to standard output; send one of them to a file")


def _require_accepted(received: int, accepted: int) -> None:
    """Input of which no event was accepted is unusable: say so with a non-zero exit (after the summary)."""
    if received and not accepted:
        fail(f"none of the {received:,} events received was accepted (see the rejection reasons above)", code=1)


@app.command()
def backtest(
    events: Annotated[list[Path], typer.Argument(help="Event files to replay; - reads standard input.")],
    rules: Annotated[Path | None, typer.Option(help="Rule file (YAML); default: the built-in pack.")] = None,
    labels: Annotated[Path | None, typer.Option(help="Labels file with incidents (from `simulate`).")] = None,
    alerts_out: Annotated[
        Path | None, typer.Option("--alerts-out", help="Also write the alerts (NDJSON); - for stdout.")
    ] = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write an HTML plot (value, expected band, alerts) of one series.")
    ] = None,
    series: Annotated[
        str | None,
        typer.Option("--series", help='Series to plot, e.g. "failure_rate{market=BR}"; default: the first alert\'s.'),
    ] = None,
    detect_within: Annotated[
        str,
        typer.Option(
            "--detect-within",
            help="With --labels: an incident counts as detected when an alert on its dimensions is notified "
            "within this time of its start (e.g. 5m, 90s); later ones are shown as late.",
        ),
    ] = "5m",
    detector: DETECTOR = "robust",
    validation_rules: VALIDATION_RULES = None,
    output: OUTPUT = "table",
) -> None:
    """Show when each rule would have fired on history; with --labels, precision, recall and time to detect."""
    from tunewatch.cli.preflight import check_event_files
    from tunewatch.cli.render import backtest_json, print_backtest
    from tunewatch.durations import parse_duration_ms
    from tunewatch.evaluate.backtest import load_labels, score
    from tunewatch.evaluate.plot import SeriesRecorder, write_backtest_plot
    from tunewatch.pipeline.replay_job import ReplayJob

    fmt = output_format(output)
    with user_errors():
        _one_stdout(fmt, alerts_out=alerts_out)
        if is_stdio(plot):
            fail("--plot: give an .html file name (the plot is a page, not a stream)")
        for target, what in ((alerts_out, "alerts file"), (plot, "plot")):
            if target is not None:
                output_path(target, what)
        try:
            within_ms = parse_duration_ms(detect_within)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--detect-within") from exc
        recorder = SeriesRecorder(series) if plot else None
        job = ReplayJob.from_files(
            rules=text_input(rules, "rule file") if rules else None, detector=check_detector(detector),
            validation_rules=text_input(validation_rules, "validation rule file") if validation_rules else None,
            on_metrics=recorder,
        )  # fmt: skip
        ruleset = job.rules
        incidents = load_labels(text_input(labels, "labels file")) if labels else None
        events = check_event_files(events)
        with contextlib.ExitStack() as stack:
            a_out = stack.enter_context(open_output(alerts_out)) if alerts_out else None
            with console.status("replaying history…"):
                summary = job.run(events, alerts_out=a_out)
        report = None
        if incidents is not None:
            span = max(1, summary.counters.windows) * 60_000
            report = score(summary.alerts, incidents, span_ms=span, detect_within_ms=within_ms)
        results = console if is_stdio(alerts_out) or is_stdio(plot) else out
        if fmt == "json":
            print_json(backtest_json(ruleset, summary, report))
        else:
            print_backtest(results, ruleset, summary, report)
        if plot is not None and recorder is not None:
            shown = write_backtest_plot(plot, recorder.frame(), summary.alerts, series)
            console.print(Text(f"plot of {shown} written to {plot}"))
        _require_accepted(summary.counters.received, summary.counters.accepted)


@rules_app.command("check")
def rules_check(
    file: Annotated[Path, typer.Argument(help="Rule file to validate; - reads standard input.")],
    output: OUTPUT = "table",
) -> None:
    """Validate a rule file; print its rules or the errors with their location."""
    from tunewatch.alert.rules import load_rules
    from tunewatch.cli.tables import Column, fitted_table

    fmt = output_format(output)
    with user_errors():
        ruleset = load_rules(text_input(file, "rule file"))
    pairs = [(g, r) for g in ruleset.groups for r in g.rules]
    if fmt == "json":
        rows = [{"group": g.name, "alert": r.alert, "kind": r.kind, "metric": r.metric,
                 "dimensions": list(r.dimensions), "for_s": r.for_ms // 1000} for g, r in pairs]  # fmt: skip
        print_json({"file": str(file), "ok": True, "rules": rows})
        return
    columns = [Column("group", drop=3), Column("alert", 12), Column("kind", drop=2), Column("metric", 10),
               Column("dimensions", drop=1), Column("for", justify="right")]  # fmt: skip
    cells = [[g.name, r.alert, r.kind, r.metric, ", ".join(r.dimensions), f"{r.for_ms // 1000}s"]
             for g, r in pairs]  # fmt: skip
    out.print(fitted_table(out, columns, cells, title=f"{file}: {len(ruleset.rules)} rules OK"))


# Commands of the other modules, registered explicitly: a module that fails to import fails the CLI loudly
# (each imports its optional packages, e.g. uvicorn, only when its command runs).
app.command("simulate")(simulate_cmd.simulate)
app.command("serve")(serve_cmd.serve)
app.command("run")(serve_cmd.run)
app.add_typer(bench_cmd.app, name="bench")
app.add_typer(silence_cmd.app, name="silences")
app.add_typer(quarantine_cmd.app, name="quarantine")
app.add_typer(keys_cmd.app, name="keys")
app.add_typer(dashboards_cmd.app, name="dashboards")
app.add_typer(metadata_cmd.app, name="metadata")
app.add_typer(audit_cmd.app, name="audit")
app.add_typer(distributed_cmd.app, name="cluster")


def run() -> None:
    """Console-script entry point."""
    run_app(app, "tunewatch")


if __name__ == "__main__":
    run()
