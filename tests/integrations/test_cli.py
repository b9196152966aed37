"""``tunewatch metadata …`` through typer's CliRunner; ``lookup`` talks to a real local HTTP server (threading
``http.server`` on a free loopback port) serving recorded Spotify and Last.fm responses."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from tests.integrations.fake_apis import CLIENT_ID, CLIENT_SECRET, LASTFM_KEY, FakeApis
from tunewatch.cli.main import app

DATA = Path(__file__).parent / "data"
KEY = "cli-test-pseudonym-key-0123"
runner = CliRunner()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv("TUNEWATCH_PSEUDONYM_KEY", KEY)
    for name in ("SPOTIFY_CLIENT_ID", "SPOTIFY_CLIENT_SECRET", "LASTFM_API_KEY", "TUNEWATCH_CACHE_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def api_env(env: pytest.MonkeyPatch, apis: FakeApis) -> FakeApis:
    env.setenv("SPOTIFY_CLIENT_ID", CLIENT_ID)
    env.setenv("SPOTIFY_CLIENT_SECRET", CLIENT_SECRET)
    env.setenv("SPOTIFY_API_BASE", f"{apis.base}/v1/")
    env.setenv("SPOTIFY_TOKEN_URL", f"{apis.base}/api/token")
    env.setenv("LASTFM_API_KEY", LASTFM_KEY)
    env.setenv("LASTFM_API_BASE", f"{apis.base}/2.0/")
    return apis


@pytest.mark.integration
def test_lookup_prints_one_json_line_per_id(api_env: FakeApis) -> None:
    result = runner.invoke(
        app,
        ["metadata", "lookup", "--track", "4uLU6hMCjMI75M1A2tKUQC", "--track", "7ouMYWpwJ422jRcDASZB7P",
         "--artist", "0OdUWJ0sBjDrqHygGUXeCF"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(x["kind"], x["found"]) for x in lines] == [("track", True), ("track", False), ("artist", True)]
    assert lines[0]["metadata"]["name"] == "Coastline Lights"
    assert lines[0]["metadata"]["lastfm_tags"][0] == "synthwave"
    assert lines[2]["metadata"]["name"] == "Neon Harbor"
    assert "1 of 3 ids unknown" in result.stderr
    assert CLIENT_SECRET not in result.output


def test_lookup_without_credentials_says_what_to_set(env: pytest.MonkeyPatch) -> None:
    result = runner.invoke(app, ["metadata", "lookup", "--track", "4uLU6hMCjMI75M1A2tKUQC"])
    assert result.exit_code == 2
    assert "SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET, or LASTFM_API_KEY" in result.stderr


def test_import_spotify_history_writes_events_that_replay_accepts(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    out = tmp_path / "events.ndjson"
    result = runner.invoke(app, ["metadata", "import-spotify-history", str(DATA / "spotify_history.json"),
                                 "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "4 records, 3 events, 1 skipped (no_track)" in result.stderr
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(events) == 3 and all(e["event_type"] == "play" for e in events)
    assert "alice_spotify" not in out.read_text()
    replay = runner.invoke(app, ["replay", str(out), "--quiet"])
    assert replay.exit_code == 0, replay.output
    assert "rejected" in replay.stdout
    assert [line.split("│")[2].strip() for line in replay.stdout.splitlines() if "rejected" in line] == ["0"]


def test_import_spotify_history_needs_the_pseudonym_key(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.delenv("TUNEWATCH_PSEUDONYM_KEY")
    result = runner.invoke(app, ["metadata", "import-spotify-history", str(DATA / "spotify_history.json"),
                                 "--out", str(tmp_path / "e.ndjson")])  # fmt: skip
    assert result.exit_code == 2
    assert "TUNEWATCH_PSEUDONYM_KEY: not set" in result.stderr
    assert not (tmp_path / "e.ndjson").exists()


@pytest.mark.integration
def test_import_spotify_history_can_resolve_durations_from_spotify(api_env: FakeApis, tmp_path: Path) -> None:
    out = tmp_path / "events.parquet"
    result = runner.invoke(app, ["metadata", "import-spotify-history", str(DATA / "spotify_history.json"),
                                 "--out", str(out), "--resolve-durations"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert pl.read_parquet(out)["track_duration_ms"].to_list() == [207_959, 207_959, 183_000]
    assert api_env.count("/v1/tracks") == 1


def test_import_lastfm(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    out = tmp_path / "scrobbles.csv"
    result = runner.invoke(app, ["metadata", "import-lastfm", str(DATA / "lastfm_recenttracks.json"),
                                 "--out", str(out), "--market", "SE", "--platform", "desktop"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "3 records, 2 events, 1 skipped (no_ts)" in result.stderr
    frame = pl.read_csv(out)
    assert frame["market"].to_list() == ["SE", "SE"]
    assert frame["platform"].to_list() == ["desktop", "desktop"]


def test_import_lastfm_rejects_a_bad_market(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    result = runner.invoke(app, ["metadata", "import-lastfm", str(DATA / "lastfm_scrobbles_plain.csv"),
                                 "--out", str(tmp_path / "e.ndjson"), "--market", "QQ", "--user", "bob"])  # fmt: skip
    assert result.exit_code == 2
    assert "market: 'QQ' is not an ISO 3166-1 alpha-2 country code" in result.stderr


def test_export_alerts_and_metrics(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    result = runner.invoke(app, ["metadata", "export-alerts", str(DATA / "alerts.ndjson"),
                                 "--out", str(tmp_path / "alerts.parquet")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert pl.read_parquet(tmp_path / "alerts.parquet")["label_severity"].to_list() == ["warning", "critical"]
    pl.DataFrame({"metric": ["plays"], "value": [3.0]}).write_ndjson(tmp_path / "m.ndjson")
    result = runner.invoke(app, ["metadata", "export-metrics", str(tmp_path / "m.ndjson"),
                                 "--out", str(tmp_path / "m.csv")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (tmp_path / "m.csv").read_text().splitlines() == ["metric,value", "plays,3.0"]
