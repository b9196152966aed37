"""``tunewatch bench``: benchmarks of the detectors (NAB)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from tunewatch.cli.tables import Column, fitted_table

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
    from tunewatch.evaluate.generalise import fixed_threshold_score, leave_one_group_out
    from tunewatch.evaluate.nab import load_corpus, load_windows, run_detector, score_all, sweep_corpus, write_results
    from tunewatch.evaluate.nab_score import PROFILES
    from tunewatch.evaluate.registry import LABEL_FREE_THRESHOLDS, NAB_DETECTORS, nab_scorer

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
        # what the score is worth on unseen data: the threshold chosen without each category, and one chosen
        # without any label
        held_out = {p: leave_one_group_out(swept, {detector: scores}, PROFILES[p]).normalized for p in results}
        free = LABEL_FREE_THRESHOLDS.get(detector)
        label_free = {p: fixed_threshold_score(swept, scores, PROFILES[p], free) for p in results} if free else {}
    columns = [
        Column("profile", 18), Column("score", justify="right"), Column("threshold", 8, drop=2, justify="right"),
        Column("held out", justify="right"), Column("free", justify="right"),
        Column("TP windows", 4, drop=1, justify="right"), Column("FN windows", 4, drop=1, justify="right"),
        Column("FP rows", 4, drop=1, justify="right"),
    ]  # fmt: skip
    rows = [
        [name, f"{r.normalized:.2f}", f"{r.threshold:.6f}", f"{held_out[name]:.2f}",
         f"{label_free[name]:.2f}" if name in label_free else "-", str(r.tp), str(r.fn), str(r.fp)]
        for name, r in results.items()
    ]  # fmt: skip
    caption = "held out: each category scored at the threshold chosen on the others; free: " + (
        f"at {free}, a threshold chosen without this data's labels"
        if free
        else "no label-free threshold for this detector"
    )
    title = f"NAB score of {detector!r} on {len(corpus)} files"
    out.print(fitted_table(out, columns, rows, title=title, caption=caption))
    if per_file and "standard" in results:
        for key, raw in sorted(results["standard"].per_file.items()):
            out.print(f"{raw:9.3f}  {key}", highlight=False)
