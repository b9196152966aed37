"""`replay --validation-rules FILE` applies the user's business rules; a bad rule file is a one-line error."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tests.conftest import BASE_MS, make_play
from tunewatch.cli.main import app

runner = CliRunner()

RULES = """
- name: lossless_needs_premium
  when: "codec == 'flac'"
  check: "tier in ('premium', 'family', 'duo', 'student')"
  reason: lossless_without_premium
  field: codec
"""


def _events(tmp_path: Path) -> Path:
    events = [make_play(i, BASE_MS + i * 1000, codec="flac", tier="free" if i % 10 == 0 else "premium")
              for i in range(50)]  # fmt: skip
    path = tmp_path / "e.ndjson"
    path.write_text("\n".join(json.dumps(e) for e in events) + "\n")
    return path


def test_custom_rule_rejects_with_its_reason(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    quarantine = tmp_path / "q.ndjson"
    res = runner.invoke(
        app, ["replay", str(_events(tmp_path)), "--validation-rules", str(rules), "--quarantine-out", str(quarantine)]
    )
    assert res.exit_code == 0, res.output
    rejected = [json.loads(line) for line in quarantine.read_text().splitlines()]
    assert len(rejected) == 5
    assert all("codec: lossless_without_premium" in r["reasons"] for r in rejected)


def test_broken_rule_file_is_a_one_line_error(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text('- name: typo\n  check: "ms_playd > 0"\n')
    res = runner.invoke(app, ["replay", str(_events(tmp_path)), "--validation-rules", str(rules)])
    assert res.exit_code != 0
    assert "unknown field 'ms_playd'" in res.output and "Traceback" not in res.output


def test_replay_keeps_rejected_events_in_the_sqlite_quarantine(tmp_path: Path) -> None:
    events = _events(tmp_path)
    with events.open("ab") as f:
        f.write(b'{"event_id": "bad-1", "market": "br"\n')  # truncated JSON
    db = tmp_path / "q.db"
    res = runner.invoke(app, ["replay", str(events), "--quarantine-db", str(db)])
    assert res.exit_code == 0, res.output
    listed = runner.invoke(app, ["quarantine", "stats", "--db", str(db)])
    assert listed.exit_code == 0, listed.output
    assert "line" in listed.output  # the undecodable line is kept with its reason


def test_detector_is_selectable_and_unknown_ones_are_refused(tmp_path: Path) -> None:
    events = _events(tmp_path)
    assert runner.invoke(app, ["replay", str(events), "--detector", "ensemble", "-q"]).exit_code == 0
    res = runner.invoke(app, ["replay", str(events), "--detector", "magic"])
    assert res.exit_code != 0 and "unknown detector 'magic'" in res.output
