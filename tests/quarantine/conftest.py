"""Fixtures for the quarantine tests: a real SQLite store in tmp_path and events rejected by the real validator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.conftest import BASE_MS, make_play
from tunewatch.ingest.readers import parse_ndjson_bytes
from tunewatch.quarantine.store import QuarantineStore
from tunewatch.security.keyring import ENV_KEY, ENV_KEY_FILE
from tunewatch.validate import EnterpriseDataValidator, ValidationResult


def line(i: int, **overrides: Any) -> bytes:
    """One NDJSON line of a valid play event (``overrides`` make it invalid)."""
    return msgspec.json.encode(make_play(i, BASE_MS + i, **overrides))


def ingest(
    store: QuarantineStore,
    lines: list[bytes],
    validator: EnterpriseDataValidator | None = None,
    source: str = "events.ndjson",
    received_at: float | None = None,
) -> ValidationResult:
    """Validate NDJSON ``lines`` as one batch and quarantine the rejected ones, as the pipeline does."""
    result = (validator or EnterpriseDataValidator()).validate(
        parse_ndjson_bytes(b"\n".join(lines) + b"\n", source=source)
    )
    store.add(result.rejected, received_at=received_at)
    return result


@pytest.fixture(autouse=True)
def _no_data_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts without a configured data key (plaintext quarantine) whatever the caller's environment."""
    monkeypatch.delenv(ENV_KEY, raising=False)
    monkeypatch.delenv(ENV_KEY_FILE, raising=False)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Path of a quarantine database file (not created yet)."""
    return tmp_path / "quarantine.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[QuarantineStore]:
    """A quarantine store on a real SQLite file."""
    s = QuarantineStore(db_path)
    yield s
    s.close()
