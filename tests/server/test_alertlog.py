"""Alerts restored from the database after a restart: kept while the engine fires them again, else resolved."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import BASE_MS
from tests.server.rules import plays_seen_rules
from tests.server.servers import local_client
from tunewatch.alert.rules import parse_rules
from tunewatch.server import LiveService, create_app
from tunewatch.server.settings import ServerSettings


def _service(db: Path, value: int) -> tuple[LiveService, TestClient]:
    service = LiveService(
        parse_rules(plays_seen_rules(value=value, dimensions="market")),
        clock=lambda: BASE_MS / 1000 + 3600,
        db=db,
        settings=ServerSettings(restored_alert_grace_windows=3),
    )
    return service, local_client(create_app(service))


def _minutes(play: Callable[..., dict[str, Any]], first: int, minutes: int) -> str:
    return json.dumps([play(first + i, BASE_MS + (first + i) * 1000) for i in range(minutes * 60)])


def test_restored_alerts_stay_while_confirmed_and_resolve_after_the_grace(
    tmp_path: Path, play: Callable[..., dict[str, Any]]
) -> None:
    db = tmp_path / "tw.db"
    first, client = _service(db, 0)
    client.post("/api/v1/events", content=_minutes(play, 0, 5))
    (alert,) = first.active_alerts()
    first.checkpoint()  # a clean stop: one process owns the state files (a new one removes stray temporaries)

    again, client = _service(db, 0)  # restart, same rules: the engine fires the alert again
    assert [a.fingerprint for a in again.active_alerts()] == [alert.fingerprint]
    client.post("/api/v1/events", content=_minutes(play, 0, 10))
    assert [a.fingerprint for a in again.active_alerts()] == [alert.fingerprint] and not again.alert_log.restored
    again.checkpoint()

    quiet, client = _service(db, 10**9)  # restart with a rule that no longer fires
    assert [a.fingerprint for a in quiet.active_alerts()] == [alert.fingerprint]
    # new minutes (the restored stream state counts a re-send of the first ten as duplicates)
    client.post("/api/v1/events", content=_minutes(play, 600, 10))
    assert quiet.active_alerts() == []
    last = quiet.alert_history()[-1]
    assert (last.fingerprint, last.status) == (alert.fingerprint, "resolved") and last.ends_at is not None
