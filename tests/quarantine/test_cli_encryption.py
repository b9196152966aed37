"""`tunewatch quarantine ...` and `tunewatch replay --quarantine-db` on encrypted quarantines (real files, env keys)."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from typer.testing import CliRunner, Result

from tests.quarantine.conftest import ingest, line
from tests.quarantine.test_encryption import IP, USER, bad_lines, on_disk, stored
from tunewatch.cli.main import app
from tunewatch.quarantine.store import QuarantineStore
from tunewatch.security.keyring import ENV_KEY, new_entry

runner = CliRunner()
ENV = {"COLUMNS": "250", "TUNEWATCH_HOME": ""}


def run(*args: str | Path) -> Result:
    return runner.invoke(app, ["quarantine", *map(str, args)], env=ENV)


@pytest.fixture
def k1(monkeypatch: pytest.MonkeyPatch) -> str:
    """A data key ``k1`` configured in the environment."""
    entry = new_entry("k1")
    monkeypatch.setenv(ENV_KEY, entry)
    return entry


@pytest.fixture
def sealed(db_path: Path, k1: str) -> Path:
    """A quarantine database with two encrypted rejected events."""
    with QuarantineStore(db_path) as store:
        ingest(store, bad_lines(2), source="feed.ndjson")
    assert [k for _, _, k in stored(db_path)] == ["k1", "k1"]
    return db_path


def test_show_and_list_decrypt(sealed: Path) -> None:
    shown = run("show", "2", "--reveal", "--db", sealed)
    assert shown.exit_code == 0, shown.output
    assert USER in shown.output and IP in shown.output and "market: unknown_country" in shown.output
    masked = run("show", "2", "--db", sealed)
    assert masked.exit_code == 0 and USER not in masked.output and "‹redacted›" in masked.output
    listed = run("list", "--db", sealed)
    assert listed.exit_code == 0 and "2 of 2 pending" in listed.output


def test_export_decrypts(sealed: Path, tmp_path: Path) -> None:
    out = tmp_path / "bad.ndjson"
    assert run("export", out, "--db", sealed).exit_code == 0
    assert [msgspec.json.decode(r)["raw"].encode() for r in out.read_bytes().splitlines()] == bad_lines(2)
    raw = runner.invoke(app, ["quarantine", "export", "-", "--format", "raw", "--db", str(sealed)], env=ENV)
    assert raw.exit_code == 0 and raw.stdout_bytes == b"".join(r + b"\n" for r in bad_lines(2))


def test_replay_decrypts_and_fix_round_trip(sealed: Path, tmp_path: Path) -> None:
    again = run("replay", "--db", sealed)
    assert again.exit_code == 0 and "market: unknown_country ×2" in again.output
    export = tmp_path / "bad.ndjson"
    run("export", export, "--db", sealed)
    fixed = tmp_path / "fixed.ndjson"
    fixed.write_bytes(export.read_bytes().replace(b'\\"market\\":\\"XX\\"', b'\\"market\\":\\"BR\\"'))
    accepted = tmp_path / "accepted.ndjson"
    done = run("replay", "--from-file", fixed, "--out", accepted, "--db", sealed)
    assert done.exit_code == 0 and "marked replayed: 2" in done.output
    assert [msgspec.json.decode(r)["user_id"] for r in accepted.read_bytes().splitlines()] == [USER, USER]


def test_stats_says_whether_encrypted(sealed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    on = run("stats", "--db", sealed)
    assert on.exit_code == 0
    assert "raw bytes encrypted at rest (AES-256-GCM), active key id k1; stored: 2 under key id k1" in on.output
    monkeypatch.delenv(ENV_KEY)
    off = run("stats", "--db", sealed)
    assert off.exit_code == 0 and "raw bytes NOT encrypted at rest: no data key configured" in off.output


def test_stats_without_key_on_a_plaintext_quarantine(db_path: Path) -> None:
    with QuarantineStore(db_path) as store:
        ingest(store, bad_lines(1))
    result = run("stats", "--db", db_path)
    assert result.exit_code == 0 and "NOT encrypted at rest" in result.output and "1 plaintext" in result.output


def test_show_without_the_key_is_a_one_line_error(sealed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_KEY)
    result = run("show", "1", "--db", sealed)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "quarantine entry 1" in result.output and "'k1'" in result.output and "no data key" in result.output
    assert USER not in result.output


def test_rekey_command(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with QuarantineStore(db_path) as store:
        ingest(store, bad_lines(2))
    refused = run("rekey", "--db", db_path)
    assert refused.exit_code == 2 and "rekey needs a data key" in refused.output
    monkeypatch.setenv(ENV_KEY, new_entry("k1"))
    assert "rekey` seals them all" in run("stats", "--db", db_path).output
    done = run("rekey", "--db", db_path)
    assert (
        done.exit_code == 0 and "sealed with key id k1: 2 encrypted, 0 re-encrypted, 0 already current" in done.output
    )
    assert USER.encode() not in on_disk(db_path)
    assert USER in run("show", "1", "--reveal", "--db", db_path).output


def test_replay_command_quarantine_db_encrypts(tmp_path: Path, k1: str) -> None:
    events = tmp_path / "events.ndjson"
    events.write_bytes(b"\n".join([line(1), *bad_lines(2, start=2)]) + b"\n")
    db = tmp_path / "q.db"
    result = runner.invoke(app, ["replay", str(events), "--quarantine-db", str(db), "--quiet"], env=ENV)
    assert result.exit_code == 0, result.output
    assert [k for _, _, k in stored(db)] == ["k1", "k1"]
    assert USER.encode() not in on_disk(db)
    assert run("export", "-", "--format", "raw", "--db", db).stdout_bytes == b"".join(
        r + b"\n" for r in bad_lines(2, start=2)
    )
