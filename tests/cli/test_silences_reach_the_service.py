"""One silence store: a silence made with the CLI mutes the running service's alert.

A real ``tunewatch serve`` process on loopback, on its default database (``$TUNEWATCH_HOME/tunewatch.db``):
``tunewatch silences add`` mutes its alert both through the API (``--url`` / ``TUNEWATCH_URL``) and, with no
service configured, through the default database file the service uses — and mutes its notifications too, even
when the notification log lives in another database (``--notify-db``): the notifier reads the service's one
silence store, and sees a silence another process wrote without a restart.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import make_play
from tests.notify.peers import HttpReceiver
from tests.server.live import clean_env, serve, tunewatch_cli
from tests.server.rules import plays_seen_rules
from tests.server.servers import free_port

pytestmark = pytest.mark.slow


NOTIFY = """
route: {receiver: hook, group_by: [market], group_wait: 0s, group_interval: 1s, repeat_interval: 1h}
receivers:
  - name: hook
    webhook_configs: [{url: "URL/hook"}]
"""


@pytest.fixture
def service(tmp_path: Path, http_receiver: HttpReceiver) -> Iterator[tuple[str, dict[str, str]]]:
    """``tunewatch serve`` with a rule firing on any plays per market, on its default database, notifying a
    webhook with its notification log in another file; its URL and env."""
    env = clean_env(TUNEWATCH_HOME=str(tmp_path / "home"))
    rules = tmp_path / "rules.yaml"
    rules.write_text(plays_seen_rules(dimensions="market"))
    notify = tmp_path / "notify.yaml"
    notify.write_text(NOTIFY.replace("URL", http_receiver.url))
    args = ("--rules", str(rules), "--notify-config", str(notify), "--notify-db", str(tmp_path / "notify.db"))
    with serve(tmp_path, env, args, default_db=True) as served:
        yield served.base, env


def _firing(url: str) -> dict[str, list[str]]:
    """Market of each active alert → ids of the silences muting it."""
    alerts = httpx.get(url + "/api/v1/alerts", timeout=10).json()
    return {a["labels"]["market"]: a["silencedBy"] for a in alerts if "market" in a["labels"]}


def _feed_until_firing(url: str, markets: tuple[str, ...] = ("BR", "SE")) -> None:
    now_ms = int(time.time() * 1000) // 60_000 * 60_000
    n = 120 * len(markets)
    events = [make_play(i, now_ms - 8 * 60_000 + i * (480_000 // n), market=markets[i % len(markets)])
              for i in range(n)]  # fmt: skip
    r = httpx.post(url + "/api/v1/events", json=events, timeout=30)
    assert r.status_code == 200 and r.json()["accepted"] == n, r.text
    deadline = time.monotonic() + 30
    while set(_firing(url)) != set(markets):
        assert time.monotonic() < deadline, _firing(url)
        time.sleep(0.2)


def _notified_markets(http_receiver: HttpReceiver) -> set[str]:
    return {a["labels"]["market"] for r in http_receiver.received for a in r.body["alerts"] if "market" in a["labels"]}


def test_cli_silence_mutes_the_running_service(service: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    url, env = service
    _feed_until_firing(url)
    assert _firing(url) == {"BR": [], "SE": []}

    # through the API, as amtool does
    api_env = {**env, "TUNEWATCH_URL": url}
    added = tunewatch_cli("silences", "add", "market=BR", "-c", "cdn work", "-d", "2h", env=api_env)
    assert added.returncode == 0, added.stderr
    api_sid = added.stdout.strip()
    assert url in added.stderr  # it says where the silence went
    assert _firing(url) == {"BR": [api_sid], "SE": []}
    listed = tunewatch_cli("silences", "list", "--output", "json", env=api_env)
    assert [s["id"] for s in json.loads(listed.stdout)] == [api_sid]

    # no service configured: the default database, which is the one the service uses
    added = tunewatch_cli("silences", "add", "market=SE", "-c", "maintenance", env=env)
    assert added.returncode == 0, added.stderr
    db_sid = added.stdout.strip()
    assert str(tmp_path / "home" / "tunewatch.db") in added.stderr
    assert _firing(url) == {"BR": [api_sid], "SE": [db_sid]}
    listed = tunewatch_cli("silences", "list", "--output", "json", env=env)
    assert {s["id"] for s in json.loads(listed.stdout)} == {api_sid, db_sid}
    assert not (tmp_path / "tunewatch.db").exists()  # never the current directory

    expired = tunewatch_cli("silences", "expire", db_sid[:8], env=api_env)
    assert expired.returncode == 0, expired.stderr
    assert _firing(url) == {"BR": [api_sid], "SE": []}


def test_cli_silences_mute_the_running_services_notifications(
    service: tuple[str, dict[str, str]], http_receiver: HttpReceiver
) -> None:
    url, env = service
    # one silence through the default database (no service configured), one through the API
    by_db = tunewatch_cli("silences", "add", "market=BR", "-c", "cdn work", "-d", "2h", env=env)
    assert by_db.returncode == 0, by_db.stderr
    by_api = tunewatch_cli("silences", "add", "market=SE", "-c", "maintenance", "--url", url, env=env)
    assert by_api.returncode == 0, by_api.stderr
    _feed_until_firing(url, ("BR", "SE", "DE"))
    assert _firing(url) == {"BR": [by_db.stdout.strip()], "SE": [by_api.stdout.strip()], "DE": []}
    deadline = time.monotonic() + 30
    while "DE" not in _notified_markets(http_receiver):  # the unsilenced market is notified ...
        assert time.monotonic() < deadline, http_receiver.received
        time.sleep(0.2)
    time.sleep(2.5)  # ... and after two more group intervals, still nothing for the silenced ones
    assert _notified_markets(http_receiver) == {"DE"}
    # the payload links back to the service at the address it serves (its externalURL and the alert's console link)
    body = http_receiver.received[0].body
    assert body["externalURL"] == url
    assert all(a["generatorURL"].startswith(url + "/?") for a in body["alerts"])

    # expiring the database silence (another process) lets BR's next group flush through, without a restart
    expired = tunewatch_cli("silences", "expire", by_db.stdout.strip()[:8], env=env)
    assert expired.returncode == 0, expired.stderr
    while "BR" not in _notified_markets(http_receiver):
        assert time.monotonic() < deadline + 30, http_receiver.received
        time.sleep(0.2)
    assert _notified_markets(http_receiver) == {"DE", "BR"}


def test_an_unreachable_service_is_a_one_line_error(tmp_path: Path) -> None:
    env = clean_env(TUNEWATCH_HOME=str(tmp_path / "home"))
    url = f"http://127.0.0.1:{free_port()}"
    result = tunewatch_cli("silences", "list", "--url", url, env=env)
    assert result.returncode == 2
    assert result.stderr.strip().startswith(f"error: {url}: cannot reach the tunewatch service")
    assert len(result.stderr.strip().splitlines()) == 1
