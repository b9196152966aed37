"""Shared test helpers: small hand-made event streams with known properties."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.notify.peers import HttpReceiver

BASE_MS = 1_767_571_200_000  # 2026-01-05T00:00:00Z, a Monday; a window boundary


@pytest.fixture(autouse=True)
def _private_tunewatch_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test writes to the real ``~/.local/share/tunewatch`` (commands default to ``TUNEWATCH_HOME``)."""
    monkeypatch.setenv("TUNEWATCH_HOME", str(tmp_path_factory.mktemp("tunewatch-home")))


def make_play(i: int, ts: int, **overrides: Any) -> dict[str, Any]:
    """A valid play event; override any field."""
    event: dict[str, Any] = {
        "event_id": f"e{i}",
        "ts": ts,
        "event_type": "play",
        "user_id": f"u{i % 50}",
        "market": "BR",
        "platform": "android",
        "tier": "premium",
        "cdn": "edge-1",
        "source": "playlist",
        "track_id": "t1",
        "artist_id": "a1",
        "ms_played": 60_000,
        "track_duration_ms": 200_000,
        "reason_end": "trackdone",
        "startup_ms": 300,
        "bitrate_kbps": 320,
    }
    event.update(overrides)
    return event


@pytest.fixture
def play() -> Callable[..., dict[str, Any]]:
    """Factory of valid play events."""
    return make_play


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    """An HTTP receiver on loopback recording what notifications post to it (see :class:`HttpReceiver`)."""
    receiver = HttpReceiver().start()
    yield receiver
    receiver.stop()
