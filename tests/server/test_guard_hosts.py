"""The guard's Host allow-list with its verdicts remembered: the same answers, whatever was seen before."""

from __future__ import annotations

from typing import Any

from tunewatch.server.guard import _HOSTS_REMEMBERED, RequestGuard
from tunewatch.server.settings import ServerSettings


async def _app(scope: Any, receive: Any, send: Any) -> None:  # never reached by these tests
    raise AssertionError


def _scope(host: str) -> dict[str, Any]:
    return {"type": "http", "method": "GET", "path": "/healthz", "headers": [(b"host", host.encode())]}


def test_remembered_host_verdicts_match_the_allow_list_and_stay_bounded() -> None:
    guard = RequestGuard(_app, ServerSettings(allowed_hosts="localhost,example.org"))
    for _ in range(2):  # the second pass answers from the remembered verdicts
        assert guard.refusal(_scope("LocalHost:8787")) is None
        assert guard.refusal(_scope("example.org.")) is None
        refused = guard.refusal(_scope("evil.test"))
        assert refused is not None and refused[0] == 400 and "evil.test" in refused[1]
    for i in range(3 * _HOSTS_REMEMBERED):  # a client choosing Host values cannot grow the memory without bound
        assert guard.refusal(_scope(f"h{i}.test")) is not None
    assert len(guard._hosts_seen) <= _HOSTS_REMEMBERED
    assert guard.refusal(_scope("localhost")) is None and guard.refusal(_scope("evil.test")) is not None
