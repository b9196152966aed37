"""Unusable input gives a one-line error naming the file and the problem, and a non-zero exit."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tunewatch.cli.main import app

runner = CliRunner()


def _write(tmp: Path, name: str, data: bytes) -> Path:
    p = tmp / name
    p.write_bytes(data)
    return p


@pytest.mark.parametrize(
    ("name", "data", "problem"),
    [
        ("empty.ndjson", b"", "file is empty"),
        ("blank.ndjson", b"\n\n  \n", "file is empty"),
        ("image.ndjson", bytes(range(256)) * 10, "binary file"),
        ("notes.txt", b"hello world\nthis is not events\n", "unknown format"),
        ("bad.csv", b"a,b,c\n1,2,3\n", "no event_id column"),
        ("broken.ndjson.gz", b"\x1f\x8bnot really gzip", "cannot be read"),
    ],
)
def test_unusable_files(tmp_path: Path, name: str, data: bytes, problem: str) -> None:
    path = _write(tmp_path, name, data)
    result = runner.invoke(app, ["replay", str(path)])
    assert result.exit_code != 0
    message = result.output.strip()
    assert str(path) in message and problem in message
    assert "Traceback" not in message
    assert len(message.splitlines()) <= 2


def test_missing_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["replay", str(tmp_path / "nope.ndjson")])
    assert result.exit_code != 0 and "no such file" in result.output


def test_missing_rules_file(tmp_path: Path) -> None:
    events = _write(tmp_path, "e.ndjson", b'{"event_id": "a"}\n')
    result = runner.invoke(app, ["replay", str(events), "--rules", str(tmp_path / "r.yaml")])
    assert result.exit_code != 0 and "r.yaml: no such rule file" in result.output


def test_dirty_lines_do_not_fail_a_file(tmp_path: Path) -> None:
    good = (
        b'{"event_id":"e1","ts":1767571200000,"event_type":"ad","user_id":"u","market":"SE",'
        b'"platform":"web","tier":"free","ad_revenue_micros":5}\n'
    )
    path = _write(tmp_path, "dirty.ndjson.gz", gzip.compress(good + b"{not json\n\xff\xfe\n[1,2]\n" + good))
    out = tmp_path / "alerts.ndjson"
    result = runner.invoke(app, ["replay", str(path), "--alerts-out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert "accounted for" in result.output and "yes" in result.output
    assert "line: invalid_json" in result.output


def test_every_command_has_help() -> None:
    for cmd in (["--help"], ["replay", "--help"], ["backtest", "--help"], ["rules", "check", "--help"]):
        result = runner.invoke(app, cmd)
        assert result.exit_code == 0 and "Usage" in result.output
