"""Tables are readable in an 80-column terminal (values wrap, the least important columns are left out, never
``Playb… anoma… preci…``) and use the whole width of a wider one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import BASE_MS, make_play
from tunewatch.alert.rules import load_rules
from tunewatch.cli.main import app
from tunewatch.cli.tables import Column, column_widths, visible_columns


@pytest.fixture
def day(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TUNEWATCH_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TUNEWATCH_URL", raising=False)
    monkeypatch.delenv("TUNEWATCH_DB", raising=False)
    events = tmp_path / "day.ndjson"
    events.write_text("".join(json.dumps(make_play(i, BASE_MS + i * 1000)) + "\n" for i in range(180)))
    labels = {"incidents": [{"kind": "recommendation_regression_in_a_market", "dims": {"market": "BR"},
                             "start": "2026-01-05T00:01:00Z", "end": "2026-01-05T00:02:00Z"}]}  # fmt: skip
    (tmp_path / "day.labels.json").write_text(json.dumps(labels))
    return events


def _lines(text: str) -> list[str]:
    return text.splitlines()


def test_backtest_fits_80_columns_without_cutting_words(day: Path) -> None:
    labels = day.with_name("day.labels.json")
    result = CliRunner().invoke(app, ["backtest", str(day), "--labels", str(labels)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in _lines(result.stdout)) <= 80
    assert "…" not in result.stdout
    for rule in load_rules().rules:  # every rule name whole
        assert rule.alert in result.stdout


def test_backtest_uses_a_wide_terminal_whole(day: Path) -> None:
    labels = day.with_name("day.labels.json")
    result = CliRunner().invoke(app, ["backtest", str(day), "--labels", str(labels)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "…" not in result.stdout
    header = next(line for line in _lines(result.stdout) if line.lstrip().startswith("rule "))
    assert "kind" in header and "metric" in header  # the columns left out at 80 columns are back
    assert {r.alert for r in load_rules().rules} <= set(result.stdout.split())
    assert "recommendation_regression_in_a_market" in result.stdout


def test_backtest_detect_within_is_a_duration(day: Path) -> None:
    labels = day.with_name("day.labels.json")
    args = ["backtest", str(day), "--labels", str(labels), "--output", "json"]
    result = CliRunner().invoke(app, [*args, "--detect-within", "90s"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["scores"]["detect_within_s"] == 90
    bad = CliRunner().invoke(app, [*args, "--detect-within", "soon"])
    assert bad.exit_code == 2 and "--detect-within" in bad.output


def test_silences_list_at_80_columns(day: Path) -> None:
    runner = CliRunner()
    comment = "CDN maintenance window agreed with the edge provider, ticket OPS-1234"
    added = runner.invoke(app, ["silences", "add", "market=BR", 'cdn=~"edge-.*"', "-c", comment, "-a", "operations"])
    assert added.exit_code == 0, added.output
    sid = added.stdout.strip()
    narrow = runner.invoke(app, ["silences", "list"], env={"COLUMNS": "80"})
    assert narrow.exit_code == 0 and max(len(line) for line in _lines(narrow.stdout)) <= 80
    assert "…" not in narrow.stdout and "active" in narrow.stdout
    assert sid[:8] in narrow.stdout  # a unique prefix is enough for `silences expire`
    wide = runner.invoke(app, ["silences", "list"], env={"COLUMNS": "250"})
    assert sid in wide.stdout and comment in wide.stdout and "operations" in wide.stdout


def test_columns_left_out_least_important_first() -> None:
    cols = [Column("rule", 20), Column("kind", drop=2), Column("metric", 15), Column("precision", drop=1)]
    assert visible_columns(cols, 200) == [0, 1, 2, 3]
    assert visible_columns(cols, 55) == [0, 2, 3]
    assert visible_columns(cols, 20) == [0, 2]  # never-dropped columns stay, even if they must wrap


def test_widths_fill_the_space_and_keep_the_floors() -> None:
    widths = column_widths([30, 8, 24, 40], [10, 8, 24, 10], 80)
    assert widths is not None and sum(widths) == 80
    assert widths[1] == 8 and widths[2] == 24  # floors kept
    assert column_widths([10, 10], [5, 5], 30) is None  # fits: Rich lays it out at its natural width
