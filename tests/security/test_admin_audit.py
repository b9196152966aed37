"""Administrative CLI actions (API keys, silences) land in the signed audit trail, with or without a data key."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tunewatch.cli.main import app
from tunewatch.security.keyring import new_entry

runner = CliRunner()


def test_key_and_silence_changes_are_audited_and_verify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "tw.db"
    monkeypatch.setenv("TUNEWATCH_DATA_KEY", new_entry("k1"))
    created = runner.invoke(app, ["keys", "create", "--name", "ingest-bot", "--scope", "ingest", "--db", str(db)])
    assert created.exit_code == 0, created.output
    silenced = runner.invoke(app, ["silences", "add", "market=BR", "-c", "maintenance", "--db", str(db)])
    assert silenced.exit_code == 0, silenced.output
    sid = silenced.stdout.strip()
    assert runner.invoke(app, ["silences", "expire", sid, "--db", str(db)]).exit_code == 0

    listed = runner.invoke(app, ["audit", "list", "--db", str(db), "--json"])
    assert listed.exit_code == 0, listed.output
    for action in ("api_key.create", "silence.create", "silence.expire"):
        assert action in listed.output
    verified = runner.invoke(app, ["audit", "verify", "--db", str(db)])
    assert verified.exit_code == 0, verified.output


def test_without_a_data_key_the_trail_is_signed_with_the_local_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TUNEWATCH_DATA_KEY", raising=False)
    monkeypatch.delenv("TUNEWATCH_DATA_KEY_FILE", raising=False)
    db = tmp_path / "tw.db"
    assert runner.invoke(app, ["silences", "add", "market=BR", "-c", "x", "--db", str(db)]).exit_code == 0
    from tunewatch.security.audit import LOCAL_KID, AuditLog, audit_keyring

    secret = tmp_path / "tw.db.secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600  # generated on first use, private
    with AuditLog(db, audit_keyring(db)) as log:
        entries = list(log.entries())
        assert [(e.action, e.kid) for e in entries] == [("silence.create", LOCAL_KID)]
        assert log.verify().ok
    verified = runner.invoke(app, ["audit", "verify", "--db", str(db)])
    assert verified.exit_code == 0 and "audit trail OK: 1 entries" in verified.output
    # a forged entry (signed with another key) is caught
    import sqlite3

    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER audit_log_no_update")
    conn.execute("UPDATE audit_log SET target = 'other' WHERE id = 1")
    conn.commit()
    conn.close()
    with AuditLog(db, audit_keyring(db)) as log:
        result = log.verify()
        assert not result.ok and result.first_bad_id == 1
    assert runner.invoke(app, ["audit", "verify", "--db", str(db)]).exit_code == 1
