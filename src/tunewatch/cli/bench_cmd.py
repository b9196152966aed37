"""``tunewatch bench``: benchmarks of the detectors (NAB)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Benchmark the anomaly detectors.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)


@app.command("nab")
def nab(
    data_dir: Annotated[Path, typer.Argument(help="NAB data folder (CATEGORY/FILE.csv with timestamp,value).")],
    labels_json: Annotated[Path, typer.Argument(help="NAB labels/combined_windows.json.")],
    detector: Annotated[
        str, typer.Option(help="default, level, seasonal, changepoint, ensemble, robust or null.")
    ] = "default",
    results_dir: Annotated[
        Path | None, typer.Option("--results-dir", help="Write DIR/CATEGORY/<detector>_<file>.csv results.")
    ] = None,
    profile: Annotated[list[str] | None, typer.Option(help="Profile(s) to score (default: all three).")] = None,
    per_file: Annotated[bool, typer.Option("--per-file", help="Also print the standard score of every file.")] = False,
) -> None:
    """Run a detector over a NAB corpus, write NAB-format results and print the NAB score per profile."""
    from tunewatch.cli.feedback import user_errors
    from tunewatch.cli.paths import output_dir, text_input
    from tunewatch.errors import TunewatchError
    from tunewatch.evaluate.nab import load_corpus, load_windows, run_detector, score_all, sweep_corpus, write_results
    from tunewatch.evaluate.registry import NAB_DETECTORS, nab_scorer

    with user_errors():
        if detector not in NAB_DETECTORS:
            raise TunewatchError(f"--detector: unknown {detector!r}; known: {', '.join(NAB_DETECTORS)}")
        if results_dir is not None:
            output_dir(results_dir, "results folder")
        windows = load_windows(text_input(labels_json, "NAB labels file"))
        corpus = load_corpus(data_dir)
        swept = sweep_corpus(corpus, windows)
        scores = run_detector(corpus, nab_scorer(detector))
        if results_dir is not None:
            n = write_results(corpus, scores, results_dir, detector)
            err.print(f"wrote {n} result files under {results_dir}", markup=False, highlight=False)
        results = score_all(swept, scores, profile)
    table = Table(title=f"NAB score of {detector!r} on {len(corpus)} files")
    for col in ("profile", "score", "threshold", "TP windows", "FN windows", "FP rows"):
        table.add_column(col, justify="right" if col != "profile" else "left")
    for name, r in results.items():
        table.add_row(name, f"{r.normalized:.2f}", f"{r.threshold:.6f}", str(r.tp), str(r.fn), str(r.fp))
    out.print(table)
    if per_file and "standard" in results:
        for key, raw in sorted(results["standard"].per_file.items()):
            out.print(f"{raw:9.3f}  {key}", highlight=False)
