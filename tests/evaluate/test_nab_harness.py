"""The NAB harness end to end on a tiny corpus in NAB's layout: results files and scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from tunewatch.cli.main import app
from tunewatch.evaluate.nab import NabError, load_corpus, load_windows, read_results, run_detector, sweep_corpus
from tunewatch.evaluate.nab_score import PROFILES, score_corpus
from tunewatch.evaluate.registry import nab_scorer


def _write_corpus(root: Path) -> tuple[Path, Path]:
    data = root / "data"
    (data / "realTest").mkdir(parents=True)
    (data / "artificialNoAnomaly").mkdir()
    rng = np.random.default_rng(0)
    ts = pl.datetime_range(pl.datetime(2014, 4, 1), pl.datetime(2014, 4, 1, 16, 39), "5m", eager=True).dt.strftime(
        "%Y-%m-%d %H:%M:%S"
    )
    n = ts.len()
    spiky = 10 + rng.normal(0, 0.5, n)
    spiky[150] = 40  # the labelled anomaly
    pl.DataFrame({"timestamp": ts, "value": spiky}).write_csv(data / "realTest" / "spike.csv")
    pl.DataFrame({"timestamp": ts, "value": 5 + rng.normal(0, 0.5, n)}).write_csv(
        data / "artificialNoAnomaly" / "quiet.csv"
    )
    labels = {
        "realTest/spike.csv": [[f"{ts[145]}.000000", f"{ts[165]}.000000"]],
        "artificialNoAnomaly/quiet.csv": [],
    }
    lab = root / "labels.json"
    lab.write_text(json.dumps(labels))
    return data, lab


def test_bench_nab_writes_nab_format_results_and_scores(tmp_path: Path) -> None:
    data, labels = _write_corpus(tmp_path)
    res = CliRunner().invoke(app, ["bench", "nab", str(data), str(labels), "--detector", "level",
                                   "--results-dir", str(tmp_path / "results")])  # fmt: skip
    assert res.exit_code == 0, res.output
    out_file = tmp_path / "results" / "realTest" / "level_spike.csv"
    frame = pl.read_csv(out_file)
    assert frame.columns == ["timestamp", "value", "anomaly_score"]
    assert frame.height == 200
    assert frame.get_column("anomaly_score").is_between(0, 1).all()
    assert "standard" in res.output and "reward_low_FN_rate" in res.output
    # the files read back score the same as in memory; the spike is caught, nothing else fires
    corpus = load_corpus(data)
    swept = sweep_corpus(corpus, load_windows(labels))
    back = score_corpus(swept, read_results(corpus, tmp_path / "results", "level"), PROFILES["standard"])
    direct = score_corpus(swept, run_detector(corpus, nab_scorer("level")), PROFILES["standard"])
    assert back.raw == pytest.approx(direct.raw)
    assert back.tp == 1 and back.fp == 0 and back.normalized > 90


def test_null_detector_scores_zero_on_every_profile(tmp_path: Path) -> None:
    data, labels = _write_corpus(tmp_path)
    corpus = load_corpus(data)
    swept = sweep_corpus(corpus, load_windows(labels))
    scores = run_detector(corpus, nab_scorer("null"))
    for prof in PROFILES.values():
        assert score_corpus(swept, scores, prof).normalized == 0.0


def test_errors_name_the_problem(tmp_path: Path) -> None:
    data, labels = _write_corpus(tmp_path)
    with pytest.raises(NabError, match=r"no CATEGORY/FILE\.csv"):
        load_corpus(tmp_path / "nowhere")
    labels.write_text(json.dumps({"realTest/spike.csv": []}))
    with pytest.raises(NabError, match=r"artificialNoAnomaly/quiet\.csv: not in the labels file"):
        sweep_corpus(load_corpus(data), load_windows(labels))
    res = CliRunner().invoke(app, ["bench", "nab", str(data), str(labels), "--detector", "nope"])
    assert res.exit_code == 2 and "unknown 'nope'" in res.output


def test_bench_nab_reports_held_out_and_label_free_scores_beside_the_fitted_one(tmp_path: Path) -> None:
    from tunewatch.evaluate.generalise import fixed_threshold_score, leave_one_group_out
    from tunewatch.evaluate.registry import LABEL_FREE_THRESHOLDS

    data, labels = _write_corpus(tmp_path)
    res = CliRunner(env={"COLUMNS": "160"}).invoke(app, ["bench", "nab", str(data), str(labels)])
    assert res.exit_code == 0, res.output
    corpus = load_corpus(data)
    swept = sweep_corpus(corpus, load_windows(labels))
    scores = run_detector(corpus, nab_scorer("default"))
    std = PROFILES["standard"]
    held = leave_one_group_out(swept, {"default": scores}, std).normalized
    free = fixed_threshold_score(swept, scores, std, LABEL_FREE_THRESHOLDS["default"])
    row = next(line for line in res.output.splitlines() if "standard" in line)
    assert f"{held:.2f}" in row and f"{free:.2f}" in row
    assert f"at {LABEL_FREE_THRESHOLDS['default']}" in res.output
