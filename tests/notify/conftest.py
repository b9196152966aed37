"""Fixtures for notification tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.notify.peers import HttpReceiver


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver().start()
    yield receiver
    receiver.stop()
