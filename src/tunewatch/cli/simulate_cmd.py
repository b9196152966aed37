"""``tunewatch simulate``: write a realistic event stream with labelled incidents."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from tunewatch.cli.feedback import console, fail, out, user_errors
from tunewatch.cli.paths import output_path


def default_labels_path(events: Path) -> Path:
    """``day.ndjson.gz`` → ``day.labels.json`` (beside the events file)."""
    name = events.name
    for suffix in (".gz", ".zst", ".zstd", ".ndjson", ".jsonl", ".json", ".csv", ".parquet", ".pq"):
        name = name.removesuffix(suffix)
    return events.with_name(f"{name}.labels.json")


def parse_start(text: str | None, minutes: int) -> int:
    """Epoch ms of ``--start``: the fixed default, ``now`` (the run ends at the current minute) or a time."""
    from tunewatch.simulate import DEFAULT_START

    if text is None:
        return DEFAULT_START
    if text.strip().lower() == "now":
        return (int(time.time() * 1000) // 60_000 - minutes) * 60_000
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        fail(f"--start: {text!r} is neither 'now' nor a time such as 2026-01-05T00:00:00")
    return int((when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp() * 1000)


def simulate(
    out_file: Annotated[Path, typer.Option("--out", "-o", help="Events file: .ndjson/.jsonl/.csv/.parquet[.gz|.zst].")],
    minutes: Annotated[int, typer.Option(min=1, help="Simulated minutes.")] = 1440,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same file.")] = 7,
    rate: Annotated[float, typer.Option(min=1, help="Average events per minute (seasonality varies it).")] = 2000,
    start: Annotated[
        str | None,
        typer.Option(
            help="Start time (UTC), e.g. 2026-01-05T00:00:00, or 'now' (the run ends at the current minute, so "
            "`serve` accepts every event); default a fixed Monday."
        ),
    ] = None,
    labels: Annotated[Path | None, typer.Option(help="Labels file; default: <out>.labels.json.")] = None,
    warmup: Annotated[int | None, typer.Option(min=0, help="Minutes before the first incident.")] = None,
    no_incidents: Annotated[bool, typer.Option("--no-incidents", help="Normal traffic only.")] = False,
    dirty_rate: Annotated[float, typer.Option(min=0, max=1, help="Share of events with one broken rule.")] = 0.001,
    duplicate_rate: Annotated[float, typer.Option(min=0, max=1, help="Share of events sent twice.")] = 0.001,
) -> None:
    """Write a realistic event stream (seasonal, Zipf tracks, QoE, ads) with labelled incidents."""
    from tunewatch.simulate import SimulationConfig, Simulator, write_stream

    start_ms = parse_start(start, minutes)
    config = SimulationConfig(
        start=start_ms,
        minutes=minutes,
        seed=seed,
        events_per_minute=rate,
        warmup_minutes=warmup,
        incidents=not no_incidents,
        dirty_rate=dirty_rate,
        duplicate_rate=duplicate_rate,
    )
    labels_path = labels or default_labels_path(out_file)
    if labels_path.resolve() == out_file.resolve():
        fail(f"{labels_path}: the labels file would overwrite the events file")
    with user_errors():
        output_path(out_file, "events file")
        output_path(labels_path, "labels file")
        try:
            simulator = Simulator(config)
        except ValueError as exc:
            fail(str(exc))
        t0 = time.perf_counter()
        with Progress(
            TextColumn("simulating"), BarColumn(), MofNCompleteColumn(), TextColumn("min"),
            TextColumn("{task.fields[events]:,} events"), TimeRemainingColumn(), console=console, transient=True,
        ) as progress:  # fmt: skip
            task = progress.add_task("simulate", total=minutes, events=0)
            try:
                n = write_stream(
                    simulator, out_file, progress=lambda done, ev: progress.update(task, completed=done, events=ev)
                )
            except OSError as exc:
                fail(f"{out_file}: cannot write ({exc.strerror or exc})")
        seconds = time.perf_counter() - t0
        labels_path.write_text(json.dumps(simulator.labels(), indent=2) + "\n", encoding="utf-8")
    out.print(f"{out_file}: {n:,} events in {seconds:.1f} s ({n / seconds:,.0f} events/s)", highlight=False)
    from tunewatch.cli.render import compact_table, short_time  # lazy: `tunewatch --help` stays fast

    table = compact_table("labelled incidents")
    for col in ("incident", "dimensions", "start (UTC)", "minutes"):
        table.add_column(col, overflow="fold", justify="right" if col == "minutes" else "left")
    for inc in simulator.schedule:
        dims = ", ".join(f"{k}={v}" for k, v in inc.dims.items()) or "(global)"
        table.add_row(escape(inc.kind), escape(dims), short_time(inc.start), f"{(inc.end - inc.start) // 60_000}")
    if simulator.schedule:
        out.print(table)
    if simulator.no_incidents_reason:
        out.print(f"no incidents: {simulator.no_incidents_reason}", highlight=False)
    out.print(f"labels: {labels_path}  (dirty {simulator.dirty:,}, duplicates {simulator.duplicates:,})")
