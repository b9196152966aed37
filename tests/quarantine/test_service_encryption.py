"""The live service's quarantine picks the data key up from the environment itself (no server-side wiring)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.quarantine.test_encryption import USER, bad_lines, on_disk, stored
from tests.server.rules import plays_seen_rules
from tunewatch.alert.rules import parse_rules
from tunewatch.ingest.readers import parse_ndjson_bytes
from tunewatch.quarantine.store import QuarantineStore
from tunewatch.security.keyring import ENV_KEY, new_entry
from tunewatch.server import LiveService


def test_service_quarantine_encrypts_with_the_env_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_KEY, new_entry("k1"))
    db = tmp_path / "tunewatch.db"
    service = LiveService(parse_rules(plays_seen_rules()), db=db)
    assert service.quarantine.encrypting_kid == "k1"
    service.ingest(parse_ndjson_bytes(b"\n".join(bad_lines(2)) + b"\n", source="api"))
    assert [k for _, _, k in stored(db)] == ["k1", "k1"]
    assert USER.encode() not in on_disk(db)
    with QuarantineStore(db, create=False) as store:
        assert [e.raw for e in store.list()] == bad_lines(2)
