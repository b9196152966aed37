"""Config parsing and errors, matchers, routing, the silences CLI and the SQLite helper."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tunewatch.cli.silence_cmd import app
from tunewatch.errors import ConfigError
from tunewatch.notify import NotifyConfig, load_config
from tunewatch.notify.matchers import Matcher, parse_matchers
from tunewatch.notify.route import Route
from tunewatch.store.sqlite import StoreError, migrate, open_store

GOOD = """
route:
  receiver: team
  group_by: [alertname]
  routes:
    - matchers: ['severity="critical"', 'market=~"BR|AR"']
      receiver: pager
      group_wait: 10s
receivers:
  - name: team
    webhook_configs: [{url: "http://127.0.0.1:9/hook"}]
  - name: pager
    slack_configs: [{api_url: "${TW_TEST_SLACK}"}]
"""


def test_config_parses_and_inherits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TW_TEST_SLACK", "https://hooks.slack.com/services/T/B/sekret")
    cfg = NotifyConfig.from_yaml(GOOD)
    assert "sekret" not in repr(cfg) and "sekret" not in str(cfg)
    slack = cfg.receivers[1].slack_configs[0]
    assert slack.api_url is not None and slack.api_url.get_secret_value().endswith("sekret")
    tree = Route.build(cfg.route)
    (child,) = tree.children
    assert child.opts.group_wait_ms == 10_000 and child.opts.group_interval_ms == 300_000
    assert child.opts.group_by == frozenset({"alertname"})
    assert [r.opts.receiver for r in tree.match({"severity": "critical", "market": "AR"})] == ["pager"]
    assert [r.opts.receiver for r in tree.match({"severity": "critical", "market": "DE"})] == ["team"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD.replace("group_wait: 10s", "group_wait: soon"), "route.routes.0.group_wait: bad duration"),
        (GOOD.replace("receiver: pager", "receiver: nobody"), "route.routes.0.receiver: unknown receiver 'nobody'"),
        (
            GOOD.replace("group_by: [alertname]", "group_by: [alertname]\n  grup_wait: 1s"),
            "route.grup_wait: unknown key",
        ),
        (GOOD.replace('market=~"BR|AR"', 'market=~"(BR"'), "bad matcher regex"),
        (GOOD.replace('{url: "http://127.0.0.1:9/hook"}', "{max_alerts: 3}"), "url (or url_file) is required"),
        (GOOD.replace("TW_TEST_SLACK", "TW_TEST_UNSET"), "api_url: environment variable TW_TEST_UNSET is not set"),
        ("route: {receiver: x}\nreceivers: [{name: x, rate_limit: lots}]", "receivers.0.rate_limit: bad rate_limit"),
        ("route: [1]", "route: Input should be a valid dictionary"),
        (": :", "not valid YAML"),
    ],
)
def test_config_errors_name_the_bad_key(text: str, message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TW_TEST_SLACK", "https://hooks.slack.com/services/T/B/sekret")
    monkeypatch.delenv("TW_TEST_UNSET", raising=False)
    with pytest.raises(ConfigError, match=re.escape(message)):
        NotifyConfig.from_yaml(text)


def test_secret_file_and_missing_file(tmp_path: Path) -> None:
    url_file = tmp_path / "url"
    url_file.write_text("http://127.0.0.1:9/secret-path\n")
    path = tmp_path / "notify.yml"
    path.write_text(f"route: {{receiver: r}}\nreceivers: [{{name: r, webhook_configs: [{{url_file: {url_file}}}]}}]")
    cfg = load_config(path)
    url = cfg.receivers[0].webhook_configs[0].url
    assert url is not None and url.get_secret_value() == "http://127.0.0.1:9/secret-path"
    path.write_text("route: {receiver: r}\nreceivers: [{name: r, webhook_configs: [{url_file: /nonexistent/x}]}]")
    with pytest.raises(ConfigError, match=r"receivers\.0\.webhook_configs\.0: .*url_file: cannot read"):
        load_config(path)


def test_matchers() -> None:
    assert parse_matchers(['{market="BR", cdn=~"edge-(1|2)"}']) == (
        Matcher.make("market", "=", "BR"), Matcher.make("cdn", "=~", "edge-(1|2)"),
    )  # fmt: skip
    neg = Matcher.parse('cdn!~"edge-.*"')
    assert neg.matches({"cdn": "origin"}) and not neg.matches({"cdn": "edge-7"})
    assert Matcher.parse('summary="a, b"').matches({"summary": "a, b"})
    with pytest.raises(ConfigError, match="bad matcher"):
        Matcher.parse("no operator here")


def test_silences_cli_add_list_expire(tmp_path: Path) -> None:
    runner = CliRunner()
    db = str(tmp_path / "tw.db")
    added = runner.invoke(app, ["add", "market=BR", 'cdn=~"edge-.*"', "--duration", "2h", "--comment", "cdn work",
                                "--author", "ana", "--db", db])  # fmt: skip
    assert added.exit_code == 0, added.output
    sid = added.stdout.strip()
    soon = datetime.now(UTC) + timedelta(days=10)
    future = runner.invoke(app, ["add", "market=DE", "--starts", soon.isoformat(), "--ends",
                                 (soon + timedelta(days=1)).isoformat(), "-c", "later", "--db", db])  # fmt: skip
    assert future.exit_code == 0, future.output
    too_far = runner.invoke(app, ["add", "market=DE", "--starts", "2999-01-01T00:00:00Z", "--ends",
                                  "2999-01-02T00:00:00Z", "-c", "later", "--db", db])  # fmt: skip
    assert too_far.exit_code == 2 and "max_silence" in too_far.output  # the service's bound, in the CLI too
    listed = runner.invoke(app, ["list", "--db", db], env={"COLUMNS": "250"})
    assert listed.exit_code == 0 and sid in listed.output and "active" in listed.output and "pending" in listed.output
    assert 'market="BR" cdn=~"edge-.*"' in listed.output and "ana" in listed.output
    expired = runner.invoke(app, ["expire", sid[:8], "--db", db])
    assert expired.exit_code == 0 and sid in expired.output
    assert runner.invoke(app, ["list", "-q", "--state", "active", "--db", db]).output == ""
    assert sid in runner.invoke(app, ["list", "-q", "--state", "expired", "--db", db]).output
    again = runner.invoke(app, ["expire", sid, "--db", db])
    assert again.exit_code == 2 and "already expired" in again.output


def test_silences_cli_rejects_bad_input(tmp_path: Path) -> None:
    runner = CliRunner()
    db = str(tmp_path / "tw.db")
    assert runner.invoke(app, ["add", "market=BR", "--db", db]).exit_code != 0  # no comment
    everything = runner.invoke(app, ["add", 'alertname=~".*"', "-c", "x", "--db", db])
    assert everything.exit_code == 2 and "silence everything" in everything.output
    bad = runner.invoke(app, ["add", "market", "-c", "x", "--db", db])
    assert bad.exit_code == 2 and "bad matcher" in bad.output
    past = runner.invoke(app, ["add", "market=BR", "-c", "x", "--starts", "2000-01-01T00:00:00Z", "-d", "1h",
                               "--db", db])  # fmt: skip
    assert past.exit_code == 2 and "end in the future" in past.output


def test_store_wal_and_migrations(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    conn = open_store(db, "demo", ["CREATE TABLE t (a INTEGER)"])
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert migrate(conn, "demo", ["CREATE TABLE t (a INTEGER)", "ALTER TABLE t ADD COLUMN b TEXT"]) == 2
    conn.execute("INSERT INTO t (a, b) VALUES (1, 'x')")
    with pytest.raises(StoreError, match="newer than this tunewatch knows"):
        migrate(conn, "demo", ["CREATE TABLE t (a INTEGER)"])
    with pytest.raises(StoreError, match="migration 1 of 'broken' failed"):
        migrate(conn, "broken", ["CREATE TABLE t (a INTEGER)"])  # t exists: rolled back
    assert conn.execute("SELECT version FROM schema_migrations WHERE component = 'broken'").fetchone() is None
    with pytest.raises(StoreError, match="does not exist"):
        open_store(tmp_path / "missing" / "x.db", "demo", [])
    assert isinstance(conn, sqlite3.Connection)
