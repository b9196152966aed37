"""Careless hands: every command given a wrong file answers with one plain-text line naming it, and exits non-zero.

The table below repeats the careless commands of issue 16 and their relatives. A case fails on a traceback (an
exception escaping the command), a zero exit, an error that is not one line, or a message that does not name
the file (or option) at fault. File names with Rich markup in them (``events[bold].ndjson``) must print as they
are.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import BASE_MS, make_play
from tunewatch.cli.main import app

DATA = Path(__file__).parents[1] / "integrations" / "data"


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder of good and careless files; the commands run inside it, with their own TUNEWATCH_HOME beside it."""
    monkeypatch.setenv("TUNEWATCH_HOME", str(tmp_path / "home"))
    tmp_path = tmp_path / "work"
    tmp_path.mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TUNEWATCH_DB", raising=False)
    monkeypatch.delenv("TUNEWATCH_URL", raising=False)
    monkeypatch.setenv("TUNEWATCH_PSEUDONYM_KEY", "k" * 32)
    events = [make_play(i, BASE_MS + i * 1000) for i in range(120)]
    (tmp_path / "day.ndjson").write_text("".join(json.dumps(e) + "\n" for e in events))
    labels = {"incidents": [{"kind": "cdn_outage", "dims": {"market": "BR"}, "start": "2026-01-05T00:00:30Z",
                             "end": "2026-01-05T00:01:30Z"}], "seed": 7}  # fmt: skip
    (tmp_path / "day.labels.json").write_text(json.dumps(labels, indent=2))
    (tmp_path / "random.bin").write_bytes(bytes(range(256)) * 8 + b"\x80\x81\xfe\xff")
    (tmp_path / "random.ndjson").write_bytes(bytes(range(128, 256)) * 16)
    (tmp_path / "noise.ndjson").write_text("lorem ipsum dolor\nsit amet [1,2]\n" * 20)
    (tmp_path / "empty.ndjson").write_bytes(b"")
    (tmp_path / "alerts.ndjson").write_bytes((DATA / "alerts.ndjson").read_bytes())
    (tmp_path / "not-a-db.db").write_bytes(b"this is not SQLite" * 100)
    (tmp_path / "afile").write_text("a file, not a folder\n")
    return tmp_path


# (command line, the name of the file or option the one-line error must contain)
CASES: list[tuple[list[str], str]] = [
    # binary files where text is expected
    (["rules", "check", "random.bin"], "random.bin"),
    (["replay", "day.ndjson", "--rules", "random.bin"], "random.bin"),
    (["replay", "day.ndjson", "--validation-rules", "random.bin"], "random.bin"),
    (["backtest", "day.ndjson", "--rules", "random.bin"], "random.bin"),
    (["backtest", "day.ndjson", "--labels", "random.bin"], "random.bin"),
    (["serve", "--notify-config", "random.bin", "--port", "1"], "random.bin"),
    (["run", "--notify-config", "random.bin", "--port", "1"], "random.bin"),
    (["bench", "nab", ".", "random.bin"], "random.bin"),
    (["cluster", "worker", "--rules", "random.bin"], "random.bin"),
    (["serve", "--rules", "random.bin", "--port", "1"], "random.bin"),
    (["metadata", "export-alerts", "random.bin", "--out", "x.csv"], "random.bin"),
    (["metadata", "export-metrics", "random.ndjson", "--out", "x.csv"], "random.ndjson"),
    (["metadata", "import-lastfm", "random.bin", "--out", "x.ndjson", "--market", "SE"], "random.bin"),
    (["metadata", "import-spotify-history", "random.bin", "--out", "x.ndjson"], "random.bin"),
    # output paths that cannot be written (a missing folder is created; one under a file cannot be)
    (["replay", "day.ndjson", "--alerts-out", "afile/a.ndjson"], "afile/a.ndjson"),
    (["replay", "day.ndjson", "--quarantine-out", "afile/q.ndjson"], "afile/q.ndjson"),
    (["replay", "day.ndjson", "--quarantine-db", "afile/q.db"], "afile/q.db"),
    (["backtest", "day.ndjson", "--plot", "afile/p.html"], "afile/p.html"),
    (["backtest", "day.ndjson", "--alerts-out", "afile/a.ndjson"], "afile/a.ndjson"),
    (["simulate", "--minutes", "5", "--out", "afile/x.ndjson"], "afile/x.ndjson"),
    (["dashboards", "export", "/proc/nope"], "/proc/nope"),
    (["dashboards", "export", "afile"], "afile"),
    (["metadata", "export-alerts", "alerts.ndjson", "--out", "afile/x.csv"], "afile/x.csv"),
    (
        [
            "metadata",
            "import-lastfm",
            str(DATA / "lastfm_scrobbles_plain.csv"),
            "--out",
            "afile/e.ndjson",
            "--market",
            "SE",
            "--user",
            "bob",
        ],
        "afile/e.ndjson",
    ),
    # databases that are missing or are not databases
    (["silences", "list", "--db", "nodir/t.db"], "nodir/t.db"),
    (["silences", "expire", "abc", "--db", "nodir/t.db"], "nodir/t.db"),
    (["silences", "add", "market=BR", "-c", "x", "--db", "nodir/t.db"], "nodir/t.db"),
    (["silences", "list", "--db", "not-a-db.db"], "not-a-db.db"),
    (["keys", "list", "--db", "nodir/t.db"], "nodir/t.db"),
    (["keys", "list", "--db", "not-a-db.db"], "not-a-db.db"),
    (["keys", "revoke", "abc", "--db", "nodir/t.db"], "nodir/t.db"),
    (["audit", "list", "--db", "nodir/t.db"], "nodir/t.db"),
    (["quarantine", "list", "--db", "not-a-db.db"], "not-a-db.db"),
    (["quarantine", "export", "q.ndjson", "--db", "nodir/t.db"], "nodir/t.db"),
    # file names with Rich markup in them
    (["replay", "events[bold].ndjson"], "events[bold].ndjson"),
    (["replay", "e[x].ndjson"], "e[x].ndjson"),
    (["backtest", "[red]x[/red].ndjson"], "[red]x[/red].ndjson"),
    (["rules", "check", "r[bold].yaml"], "r[bold].yaml"),
    # wrong input that used to exit 0
    (["replay", "day.labels.json"], "day.labels.json"),
    (["replay", "random.ndjson"], "random.ndjson"),
    (["replay", "noise.ndjson"], "noise.ndjson"),
    (["replay", "empty.ndjson"], "empty.ndjson"),
    (["replay", "random.bin"], "random.bin"),
    (["backtest", "day.labels.json"], "day.labels.json"),
    (["backtest", "day.ndjson", "--labels", "day.ndjson"], "day.ndjson"),
    (["metadata", "export-alerts", "empty.ndjson", "--out", "x.csv"], "empty.ndjson"),
    (["metadata", "export-alerts", "day.ndjson", "--out", "x.csv"], "day.ndjson"),
    (["metadata", "export-metrics", "alerts.ndjson", "--out", "m.csv"], "alerts.ndjson"),
    (["metadata", "export-metrics", "day.labels.json", "--out", "m.csv"], "day.labels.json"),
    (["metadata", "export-metrics", "empty.ndjson", "--out", "m.csv"], "empty.ndjson"),
    (["rules", "check", "day.ndjson"], "day.ndjson"),
    (["rules", "check", "empty.ndjson"], "empty.ndjson"),
    # options
    (["replay", "day.ndjson", "--output", "yaml"], "--output"),
    (["replay", "day.ndjson", "--output", "json", "--alerts-out", "-"], "--alerts-out -"),
    (["backtest", "day.ndjson", "--plot", "-"], "--plot"),
]


def _id(case: tuple[list[str], str]) -> str:
    return " ".join(case[0])[:70]


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_careless_command_fails_with_one_line_naming_the_file(files: Path, case: tuple[list[str], str]) -> None:
    args, name = case
    result = CliRunner().invoke(app, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"traceback: {type(result.exception).__name__}: {result.exception}"
    )
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert name in errors[0], f"{name!r} not named in: {errors[0]}"


def test_a_missing_output_folder_is_created_before_the_work(files: Path) -> None:
    result = CliRunner().invoke(app, ["replay", "day.ndjson", "-q", "--alerts-out", "new/deeper/a.ndjson",
                                      "--quarantine-out", "new/q.ndjson"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (files / "new" / "deeper" / "a.ndjson").is_file() and (files / "new" / "q.ndjson").is_file()


def test_an_unwritable_output_fails_before_the_replay(files: Path) -> None:
    """The error comes first: no replay summary was printed (the work never started)."""
    result = CliRunner().invoke(app, ["replay", "day.ndjson", "-q", "--alerts-out", "afile/a.ndjson"])
    assert result.exit_code == 2
    assert "replay summary" not in result.output and "afile/a.ndjson" in result.stderr


def test_reading_a_default_database_never_creates_it(files: Path) -> None:
    result = CliRunner().invoke(app, ["silences", "list", "--output", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []
    assert not (files.parent / "home" / "tunewatch.db").exists()
    assert not (files / "tunewatch.db").exists()


def test_nothing_is_written_to_the_current_directory(files: Path) -> None:
    before = set(os.listdir(files))
    runner = CliRunner()
    assert runner.invoke(app, ["silences", "add", "market=BR", "-c", "maintenance"]).exit_code == 0
    assert runner.invoke(app, ["keys", "create", "-n", "ci", "-s", "read"]).exit_code == 0
    assert set(os.listdir(files)) == before
    db = files.parent / "home" / "tunewatch.db"
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM silences").fetchone()[0] == 1


def test_stdin_and_stdout(files: Path) -> None:
    runner = CliRunner()
    events = (files / "day.ndjson").read_bytes()
    summary = runner.invoke(app, ["replay", "-", "--output", "json", "-q"], input=events)
    assert summary.exit_code == 0, summary.output
    document = json.loads(summary.stdout)
    assert document["events"]["received"] == 120 and document["files"] == ["<stdin>"]
    rules = runner.invoke(app, ["rules", "check", "-", "--output", "json"], input="groups: [")
    assert rules.exit_code == 2 and "<stdin>" in rules.stderr
    labels = runner.invoke(app, ["replay", "-"], input=(files / "day.labels.json").read_bytes())
    assert labels.exit_code == 2 and "<stdin>: not an events file" in labels.stderr
    alerts = runner.invoke(app, ["metadata", "export-alerts", "-", "--out", "a.csv"],
                           input=(files / "alerts.ndjson").read_bytes())  # fmt: skip
    assert alerts.exit_code == 0, alerts.output
    assert (files / "a.csv").read_text().count("\n") == 3  # header + 2 alerts


def test_json_outputs_parse(files: Path) -> None:
    runner = CliRunner()
    checked = runner.invoke(app, ["rules", "check", str(Path("src").resolve()), "--output", "json"])
    assert checked.exit_code != 0  # a folder, not a rule file
    backtest = runner.invoke(app, ["backtest", "day.ndjson", "--labels", "day.labels.json", "--output", "json"])
    assert backtest.exit_code == 0, backtest.output
    document = json.loads(backtest.stdout)
    assert {"replay", "rules", "incidents", "scores"} <= set(document)
    assert document["incidents"][0]["dims"] == {"market": "BR"}
    keys = runner.invoke(app, ["keys", "create", "-n", "ops", "-s", "admin"])
    assert keys.exit_code == 0
    listed = json.loads(runner.invoke(app, ["keys", "list", "--output", "json"]).stdout)
    assert [k["name"] for k in listed] == ["ops"] and listed[0]["scopes"] == ["admin"]


def test_input_accepted_nowhere_exits_non_zero_after_the_summary(files: Path) -> None:
    bad = [make_play(i, BASE_MS + i * 1000, market="QQ") for i in range(30)]
    (files / "bad.ndjson").write_text("".join(json.dumps(e) + "\n" for e in bad))
    result = CliRunner().invoke(app, ["replay", "bad.ndjson", "-q"])
    assert result.exit_code == 1
    assert "market: unknown_country" in result.stdout
    assert "none of the 30 events received was accepted" in result.stderr
