"""Importers of Spotify streaming history and Last.fm scrobbles, and the alert/metric exporters, on small
hand-written files in ``data/``."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import polars as pl
import pytest

from tunewatch.errors import ConfigError, InputError
from tunewatch.integrations.formats import (
    EventDefaults,
    export_alerts,
    export_frame,
    import_lastfm_scrobbles,
    import_spotify_history,
    pseudonym_key,
    write_events,
)
from tunewatch.integrations.formats.export import read_alerts
from tunewatch.integrations.formats.spotify_history import platform_expr
from tunewatch.schema import FIELD_NAMES

DATA = Path(__file__).parent / "data"
KEY = "test-pseudonym-key-0123456789"


def _hmac(user: str) -> str:
    return hmac.new(KEY.encode(), user.encode(), hashlib.sha256).hexdigest()


def test_spotify_history_maps_records_to_play_events() -> None:
    result = import_spotify_history([DATA / "spotify_history.json"], key=KEY)
    assert (result.received, result.imported, result.skipped["no_track"]) == (4, 3, 1)
    events = result.events
    assert set(events.columns) <= {*FIELD_NAMES, "duration_source"}
    first = events.row(0, named=True)
    assert first["ts"] == 1_767_607_410_000  # 2026-01-05T10:03:30Z
    assert first["event_type"] == "play"
    assert first["user_id"] == _hmac("alice_spotify")
    assert first["track_id"] == "4uLU6hMCjMI75M1A2tKUQC"
    assert first["artist_id"].startswith("an-") and len(first["artist_id"]) == 35
    assert (first["market"], first["tier"]) == ("BR", "premium")
    assert events["platform"].to_list() == ["android", "ios", "desktop"]
    assert events["market"].to_list() == ["BR", "BR", "BR"]  # "br" upper-cased
    assert events["reason_end"].to_list() == ["trackdone", "fwdbtn", "unexpected-exit"]
    assert events["skipped"].to_list() == [None, True, False]
    assert events["shuffle"].to_list() == [False, True, False]
    # durations unknown to a catalogue: the longest play of each track, a lower bound (and marked so)
    assert events["track_duration_ms"].to_list() == [210_000, 210_000, 95_000]
    assert events["duration_source"].to_list() == ["longest_play"] * 3
    assert "ip_addr" not in events.columns and "user_agent" not in events.columns


def test_spotify_history_ids_are_deterministic_and_unique() -> None:
    a = import_spotify_history([DATA / "spotify_history.json"], key=KEY).events
    b = import_spotify_history([DATA / "spotify_history.json"], key=KEY).events
    assert a["event_id"].to_list() == b["event_id"].to_list()
    assert a["event_id"].n_unique() == a.height
    assert all(i.startswith("sp-") and len(i) == 35 for i in a["event_id"])
    other_key = import_spotify_history([DATA / "spotify_history.json"], key=KEY + "x").events
    assert other_key["user_id"][0] != a["user_id"][0]
    assert other_key["event_id"].to_list() == a["event_id"].to_list()  # ids do not depend on the key


def test_known_durations_replace_the_estimate() -> None:
    result = import_spotify_history(
        [DATA / "spotify_history.json"], key=KEY, durations={"0VjIjW4GlUZAMYd2vXMi3b": 183_000}
    )
    assert result.events["track_duration_ms"].to_list() == [210_000, 210_000, 183_000]


def test_spotify_history_without_username_needs_a_user(tmp_path: Path) -> None:
    records = json.loads((DATA / "spotify_history.json").read_text())
    for r in records:
        r.pop("username")
    path = tmp_path / "Streaming_History_Audio_2026.json"
    path.write_text(json.dumps(records))
    with pytest.raises(InputError, match=r"user_id: the export has no 'username' field"):
        import_spotify_history([path], key=KEY)
    result = import_spotify_history([path], key=KEY, defaults=EventDefaults(user="alice_spotify", tier="free"))
    assert result.events["user_id"].unique().to_list() == [_hmac("alice_spotify")]
    assert result.events["tier"].unique().to_list() == ["free"]


def test_spotify_history_rejects_other_json(tmp_path: Path) -> None:
    path = tmp_path / "other.json"
    path.write_text('[{"hello": 1}]')
    with pytest.raises(InputError, match="no 'ts' field"):
        import_spotify_history([path], key=KEY)
    with pytest.raises(InputError, match="no such file"):
        import_spotify_history([tmp_path / "missing.json"], key=KEY)


@pytest.mark.parametrize(
    ("text", "platform"),
    [
        ("Android OS 13 API 33 (Google, Pixel 7)", "android"),
        ("Android TV 11", "tv"),
        ("iOS 17.2 (iPhone15,2)", "ios"),
        ("OS X 10.15.7 [x86 8]", "desktop"),
        ("web_player osx;chrome 120", "web"),
        ("Partner sonos_arm Sonos One", "speaker"),
        ("Android Auto", "car"),
        ("Partner something", "other"),
    ],
)
def test_platform_mapping(text: str, platform: str) -> None:
    assert pl.select(platform_expr(pl.lit(text))).item() == platform


def _lastfm(path: Path, **kw: str) -> pl.DataFrame:
    defaults = EventDefaults(market="br", **kw)
    return import_lastfm_scrobbles(path, key=KEY, defaults=defaults).events


def test_lastfm_csv_with_header() -> None:
    result = import_lastfm_scrobbles(
        DATA / "lastfm_scrobbles_header.csv", key=KEY, defaults=EventDefaults(market="BR", user="bob_scrobbles")
    )
    assert (result.received, result.imported, result.skipped["no_ts"]) == (3, 2, 1)
    events = result.events
    assert events["ts"].to_list() == [1_767_607_200_000, 1_767_607_500_000]
    assert events["track_id"][0] == "5f2d4a7e-1b3c-4d5e-8f90-a1b2c3d4e5f6"  # the MBID when there is one
    assert events["track_id"][1].startswith("tn-")
    assert events["user_id"].unique().to_list() == [_hmac("bob_scrobbles")]
    assert events["market"].unique().to_list() == ["BR"]
    assert events["ms_played"].to_list() == events["track_duration_ms"].to_list() == [210_000, 210_000]


def test_lastfm_headerless_csv_and_json_pages_give_the_same_events() -> None:
    plain = _lastfm(DATA / "lastfm_scrobbles_plain.csv", user="bob_scrobbles")
    pages = import_lastfm_scrobbles(DATA / "lastfm_recenttracks.json", key=KEY, defaults=EventDefaults(market="BR"))
    assert pages.skipped["no_ts"] == 1  # the "now playing" entry
    header = _lastfm(DATA / "lastfm_scrobbles_header.csv", user="bob_scrobbles")
    for frame in (plain, pages.events):
        assert frame["event_id"].to_list() == header["event_id"].to_list()
        assert frame["ts"].to_list() == header["ts"].to_list()
        assert frame["artist_id"].to_list() == header["artist_id"].to_list()
        assert frame["user_id"].to_list() == header["user_id"].to_list()


def test_artist_ids_from_names_agree_across_spotify_and_lastfm() -> None:
    spotify = import_spotify_history([DATA / "spotify_history.json"], key=KEY).events
    lastfm = _lastfm(DATA / "lastfm_scrobbles_plain.csv", user="bob")
    assert spotify["artist_id"][0] == lastfm["artist_id"][1]  # "The Band"


def test_lastfm_needs_market_and_user(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"market: Last\.fm scrobbles carry no country"):
        import_lastfm_scrobbles(DATA / "lastfm_scrobbles_plain.csv", key=KEY, defaults=EventDefaults(user="bob"))
    with pytest.raises(InputError, match=r"user_id: the export does not name the Last.fm user"):
        _lastfm(DATA / "lastfm_scrobbles_plain.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="headerless CSV must have 4 columns"):
        _lastfm(bad, user="bob")
    with pytest.raises(ConfigError, match="market: 'XX' is not an ISO 3166-1"):
        EventDefaults(market="XX")


def test_pseudonym_key_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TUNEWATCH_PSEUDONYM_KEY", raising=False)
    with pytest.raises(ConfigError, match="TUNEWATCH_PSEUDONYM_KEY: not set"):
        pseudonym_key()
    monkeypatch.setenv("TUNEWATCH_PSEUDONYM_KEY", "short")
    with pytest.raises(ConfigError, match="too short"):
        pseudonym_key()
    monkeypatch.setenv("TUNEWATCH_PSEUDONYM_KEY", KEY)
    assert pseudonym_key() == KEY


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_alerts_export_flattens_labels_and_annotations(tmp_path: Path, suffix: str) -> None:
    alerts = read_alerts(DATA / "alerts.ndjson")
    out = tmp_path / f"alerts{suffix}"
    assert export_alerts(alerts, out) == 2
    frame = pl.read_csv(out) if suffix == ".csv" else pl.read_parquet(out)
    assert frame["status"].to_list() == ["firing", "resolved"]
    assert frame["label_alertname"].to_list() == ["SkipRateHigh", "FailureRateHigh"]
    assert frame["label_track_id"].to_list() == ["4uLU6hMCjMI75M1A2tKUQC", None]
    assert frame["label_cdn"].to_list() == [None, "edge-2"]
    assert frame["annotation_track_name"].to_list() == ["Coastline Lights", None]


def test_read_alerts_names_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "alerts.ndjson"
    path.write_text('{"labels": {}}\n{"oops"\n')
    with pytest.raises(InputError, match=r"alerts.ndjson:2: not JSON"):
        read_alerts(path)


def test_metric_frames_round_trip_and_nested_columns_become_json_in_csv(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {"window_start": [1, 2], "metric": ["plays", "plays"], "value": [10.0, 12.5], "dims": [["BR"], ["US", "x"]]}
    )
    assert export_frame(frame, tmp_path / "m.parquet") == 2
    assert pl.read_parquet(tmp_path / "m.parquet").equals(frame)
    export_frame(frame, tmp_path / "m.csv")
    assert pl.read_csv(tmp_path / "m.csv")["dims"].to_list() == ['["BR"]', '["US", "x"]']
    with pytest.raises(InputError, match=r"unknown output format '\.xlsx'"):
        export_frame(frame, tmp_path / "m.xlsx")


def test_write_events_leaves_out_all_null_optional_columns(tmp_path: Path) -> None:
    events = _lastfm(DATA / "lastfm_scrobbles_plain.csv", user="bob").with_columns(pl.lit(None).alias("cdn"))
    write_events(events, tmp_path / "e.ndjson")
    first = json.loads((tmp_path / "e.ndjson").read_text().splitlines()[0])
    assert "cdn" not in first and first["event_type"] == "play"


def test_hostile_spotify_records_are_skipped_with_a_reason_not_a_crash() -> None:
    # ts that is no time, ms_played "abc" / 1000.5 / -5, a NUL in the user name, a deep extra field,
    # a malformed track URI: each record is counted under its reason
    result = import_spotify_history([DATA / "spotify_history_hostile.json"], key=KEY)
    assert result.received == 4
    assert result.skipped == {"no_track": 1, "bad_ts": 1, "bad_ms_played": 2, "no_artist": 0}
    assert result.imported == 0


def test_mixed_valid_and_bad_values_keep_the_valid_records(tmp_path: Path) -> None:
    records = json.loads((DATA / "spotify_history.json").read_text())
    records[0]["ms_played"] = "210000"  # a number as text still reads
    records[1]["shuffle"] = "maybe"  # a bad optional value becomes null
    path = tmp_path / "h.json"
    path.write_text(json.dumps(records))
    events = import_spotify_history([path], key=KEY).events
    assert events["ms_played"].to_list() == [210_000, 12_000, 95_000]
    assert events["shuffle"].to_list() == [False, None, False]
