"""`tunewatch quarantine ...` through the real CLI app against a real database file."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from typer.testing import CliRunner, Result

from tests.quarantine.conftest import ingest, line
from tunewatch.cli.main import app
from tunewatch.quarantine.store import QuarantineStore

runner = CliRunner()
ENV = {"COLUMNS": "250", "TUNEWATCH_HOME": ""}


def run(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    return runner.invoke(app, ["quarantine", *map(str, args)], env={**ENV, **(env or {})})


@pytest.fixture
def filled(db_path: Path) -> Path:
    """A quarantine database holding four rejected events with personal data and hostile text."""
    with QuarantineStore(db_path) as store:
        ingest(store, [
            line(1),
            line(2, market="XX", user_id="alice@example.com", ip_addr="203.0.113.7"),
            line(3, tier="gold", user_id="bob", cdn="edge\x1b[31m-9\u202e"),
            b'{"event_id":"e4","user_id":"carol","ip_addr":"10.1.2.3","market":"XX"',
            b"e5,carol,10.1.2.3",
        ], source="feed.ndjson")  # fmt: skip
    return db_path


@pytest.mark.parametrize("command", ["list", "show", "export", "replay", "stats", "purge", "rekey"])
def test_help_of_each_command(command: str) -> None:
    result = run(command, "--help")
    assert result.exit_code == 0 and "--db" in result.output


def test_missing_database_is_a_one_line_error(tmp_path: Path) -> None:
    for args in (["list"], ["show", "1"], ["stats"], ["export", tmp_path / "x"], ["replay"]):
        result = run(*args, "--db", tmp_path / "nope.db")
        assert result.exit_code == 2, args
        assert "no quarantine database at" in result.output and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) <= 2
    assert not (tmp_path / "nope.db").exists()


def test_default_database_under_tunewatch_home(tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    with QuarantineStore(tmp_path / "home" / "tunewatch.db") as store:  # the database `serve` uses by default
        ingest(store, [line(1, market="XX")])
    result = run("list", env={"TUNEWATCH_HOME": str(tmp_path / "home")})
    assert result.exit_code == 0 and "market: unknown_country" in result.output


def test_list_masks_personal_data_unless_revealed(filled: Path) -> None:
    result = run("list", "--db", filled)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "4 of 4 pending" in out and "market: unknown_country" in out and "feed.ndjson:2" in out
    for secret in ("alice@example.com", "203.0.113.7", "bob", "carol", "10.1.2.3"):
        assert secret not in out
    assert "‹redacted›" in out and "‹hidden" in out  # the CSV-like line cannot be masked: hidden whole
    assert "\x1b" not in out and "\u202e" not in out
    revealed = run("list", "--db", filled, "--reveal")
    assert "e5,carol,10.1.2.3" in revealed.output and "‹hidden" not in revealed.output


def test_list_filters(filled: Path) -> None:
    out = run("list", "--db", filled, "--reason", "tier").output
    assert "1 of 1" in out and "tier: not_in_enum" in out
    assert "0 of 0" in run("list", "--db", filled, "--source", "other.ndjson").output
    assert "4 of 4" in run("list", "--db", filled, "--since", "1h").output
    assert "0 of 0" in run("list", "--db", filled, "--since", "2999-01-01T00:00:00Z").output
    bad = run("list", "--db", filled, "--since", "yesterday")
    assert bad.exit_code != 0 and "neither a duration" in bad.output


def test_show_explains_reasons_and_escapes_the_raw_line(filled: Path) -> None:
    result = run("show", "2", "--db", filled)
    assert result.exit_code == 0, result.output
    assert "tier: not_in_enum" in result.output and "is not one of the allowed values" in result.output
    assert "bob" not in result.output and "\\u001b[31m" in result.output and "\\u202e" in result.output
    assert "bob" in run("show", "2", "--db", filled, "--reveal").output
    missing = run("show", "99", "--db", filled)
    assert missing.exit_code == 2 and "no quarantined event with id 99" in missing.output


def test_stats(filled: Path) -> None:
    result = run("stats", "--db", filled)
    assert result.exit_code == 0, result.output
    assert "4 pending, 0 replayed" in result.output
    assert "line: invalid_json" in result.output and "50.0%" in result.output  # 2 of 4 entries
    assert "feed.ndjson" in result.output


def test_export_fix_replay_round_trip(filled: Path, tmp_path: Path) -> None:
    export = tmp_path / "bad.ndjson"
    result = run("export", export, "--reason", "market: unknown_country", "--db", filled)
    assert result.exit_code == 0 and "exported 1 entries" in result.output
    fixed = tmp_path / "fixed.ndjson"
    fixed.write_bytes(export.read_bytes().replace(b'\\"market\\":\\"XX\\"', b'\\"market\\":\\"BR\\"'))

    check = run("replay", "--from-file", fixed, "--db", filled)
    assert check.exit_code == 0 and "check only" in check.output
    assert "4 of 4" in run("list", "--db", filled).output  # nothing changed

    accepted = tmp_path / "accepted.ndjson"
    done = run("replay", "--from-file", fixed, "--out", accepted, "--db", filled)
    assert done.exit_code == 0, done.output
    assert "marked replayed: 1" in done.output
    assert msgspec.json.decode(accepted.read_bytes())["market"] == "BR"
    assert "3 of 3 pending" in run("list", "--db", filled).output
    assert "1 of 1 replayed" in run("list", "--state", "replayed", "--db", filled).output

    doubled = tmp_path / "twice.ndjson"
    doubled.write_bytes(accepted.read_bytes() * 2)
    twice = run("replay", "--from-file", doubled, "--db", filled)
    assert twice.exit_code == 0
    assert _numbers(twice.output) == [2, 1, 0, 1, 0]  # received, accepted, rejected, duplicates, skipped


def test_replay_stored_lines_reports_rejections_again(filled: Path, tmp_path: Path) -> None:
    result = run("replay", "--reason", "market", "--out", tmp_path / "ok.ndjson", "--db", filled)
    assert result.exit_code == 0, result.output
    assert _numbers(result.output) == [1, 0, 1, 0, 0]
    assert "market: unknown_country ×1" in result.output and "still quarantined: 1" in result.output
    by_id = run("replay", "4", "77", "--db", filled)  # the CSV-like line cannot be replayed as NDJSON
    assert _numbers(by_id.output) == [0, 0, 0, 0, 1]
    assert "ignored: 77" in by_id.output
    mixed = run("replay", "1", "--from-file", tmp_path / "ok.ndjson", "--db", filled)
    assert mixed.exit_code != 0 and "do not combine" in mixed.output


def test_export_raw_to_stdout(filled: Path) -> None:
    result = run("export", "-", "--format", "raw", "--reason", "tier", "--db", filled)
    assert result.exit_code == 0
    assert result.stdout_bytes == line(3, tier="gold", user_id="bob", cdn="edge\x1b[31m-9\u202e") + b"\n"
    assert run("export", "-", "--format", "xml", "--db", filled).exit_code != 0


def test_purge(filled: Path) -> None:
    assert "purged 0 entries" in run("purge", "--older-than", "1h", "--db", filled).output
    assert "purged 4 entries" in run("purge", "--older-than", "0s", "--db", filled).output


def _numbers(output: str) -> list[int]:
    """The five counts of the replay summary table's data row."""
    for row in output.splitlines():
        cells = [c.strip() for c in row.strip("│┃| ").split("│")]
        if len(cells) == 5 and all(c.isdigit() for c in cells):
            return [int(c) for c in cells]
    raise AssertionError(f"no replay counts in:\n{output}")


def test_unusable_database_and_files_are_one_line_errors(filled: Path, tmp_path: Path) -> None:
    not_db = tmp_path / "notes.db"
    not_db.write_text("hello\n")
    cases: list[tuple[list[str | Path], str]] = [
        (["stats", "--db", not_db], "file is not a database"),
        (["replay", "--from-file", tmp_path / "none.ndjson", "--db", filled], "none.ndjson: cannot be read"),
        (["replay", "--out", not_db / "dir.ndjson", "--db", filled], "notes.db is not a folder"),
    ]
    for args, message in cases:
        result = run(*args)
        assert result.exit_code == 2 and message in result.output, result.output
        assert len(result.output.strip().splitlines()) <= 2


@pytest.mark.parametrize(
    ("raw", "shown", "hidden"),
    [
        (b'{"user_id":"alice","ip_addr":"10.0.0.1"}', '{"user_id":"‹redacted›","ip_addr":"‹redacted›"}', "alice"),
        (b'{"user_id" : 12345, "x": 1}', '{"user_id" : "‹redacted›", "x": 1}', "12345"),
        (b'{"user_id":"al\\"ice"}', '{"user_id":"‹redacted›"}', "ice"),
        (b'{"user_id":"trunc', '{"user_id":"‹redacted›"', "trunc"),  # not valid JSON: masked by pattern
        (b'{"user\\u005fid":"alice"}', "‹hidden: personal fields cannot be masked reliably", "alice"),
        (b'{"user_id":{"n":"alice"}}', "‹hidden: personal fields cannot be masked reliably", "alice"),
        (b'{"a":"x","user_id":"\xff"}', '{"a":"x","user_id":"‹redacted›"}', "\\xff"),
        (b"alice,10.0.0.1", "‹hidden: not a JSON object line", "alice"),
    ],
)
def test_display_raw_masks_personal_fields(raw: bytes, shown: str, hidden: str) -> None:
    from tunewatch.quarantine.masking import display_raw

    text = display_raw(raw)
    assert text.startswith(shown) and hidden not in text
    assert hidden in display_raw(raw, reveal=True) or hidden == "\\xff"
