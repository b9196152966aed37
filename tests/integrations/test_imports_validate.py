"""Importers never write an event that tunewatch's own validator rejects.

A large, realistic Spotify streaming-history export (made here, seeded) with what real exports hold: ``ZZ`` and
lower-case countries, an empty or unassigned country, plays of one track of very different lengths (skips after
seeking, completed plays, replays longer than the catalogue's duration), unknown reasons and platforms. Every
imported event must be accepted; the values the export did not give are marked in ``duration_source`` and
counted in ``ImportResult.inferred``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from tunewatch import EnterpriseDataValidator
from tunewatch.cli.main import app
from tunewatch.integrations.formats import EventDefaults, import_lastfm_scrobbles, import_spotify_history

KEY = "test-pseudonym-key-0123456789"
BASE_MS = 1_767_571_200_000
COUNTRIES = ["BR", "se", "ZZ", "zz", "", None, "XK", "US", "DE"]
REASONS = ["trackdone", "fwdbtn", "backbtn", "endplay", "unexpected-exit-while-paused", "clickrow", None]
PLATFORMS = ["Android OS 13 API 33 (Google, Pixel 7)", "iOS 17.1 (iPhone15,2)", "web_player linux", "Sonos", "x"]


def _export(n: int, seed: int = 3) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    tracks = [f"{i:022d}"[-22:].replace("0", "A") for i in range(40)]
    true_ms = rng.integers(90_000, 420_000, size=len(tracks))
    records = []
    for i in range(n):
        t = int(rng.integers(len(tracks)))
        kind = rng.random()
        if kind < 0.55:
            played = int(true_ms[t] - rng.integers(0, 3000))  # completed
        elif kind < 0.9:
            played = int(rng.integers(0, true_ms[t]))  # skipped part-way
        else:
            played = int(true_ms[t] * rng.uniform(1.1, 2.5))  # seeked back: longer than the track
        records.append({
            "ts": f"2026-01-0{1 + i % 5}T{i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}Z",
            "username": "listener",
            "platform": PLATFORMS[i % len(PLATFORMS)],
            "ms_played": played,
            "conn_country": COUNTRIES[i % len(COUNTRIES)],
            "master_metadata_track_name": f"Song {t}",
            "master_metadata_album_artist_name": f"Artist {t % 9}",
            "spotify_track_uri": f"spotify:track:{tracks[t]}",
            "reason_start": "clickrow",
            "reason_end": REASONS[i % len(REASONS)],
            "shuffle": bool(i % 2),
            "skipped": None if i % 3 else bool(i % 4),
            "offline": False,
        })  # fmt: skip
    return records


def _validate(events: pl.DataFrame) -> Any:
    return EnterpriseDataValidator(clock=lambda: BASE_MS / 1000 + 30 * 86_400).validate(events)


@pytest.mark.parametrize("catalogue", [False, True], ids=["no durations", "catalogue durations"])
def test_every_imported_spotify_event_is_accepted(tmp_path: Path, catalogue: bool) -> None:
    records = _export(3000)
    path = tmp_path / "Streaming_History_Audio_2026.json"
    path.write_text(json.dumps(records))
    durations = None
    if catalogue:  # the catalogue knows some tracks, and some plays are longer than its duration
        uris = sorted({r["spotify_track_uri"].split(":")[-1] for r in records})
        durations = {uri: 200_000 for uri in uris[::2]}
    result = import_spotify_history([path], key=KEY, durations=durations)
    assert result.imported == 3000
    validated = _validate(result.events)
    assert validated.messages(5) == []
    assert (validated.accepted, validated.rejected_count, validated.duplicates) == (3000, 0, 0)

    events = result.events
    assert set(events["market"].unique()) <= {"BR", "SE", "ZZ", "US", "DE"}
    unknown = sum(1 for r in records if (r["conn_country"] or "").upper() not in ("BR", "SE", "US", "DE"))
    assert result.inferred["market unknown (ZZ)"] == unknown == (events["market"] == "ZZ").sum()
    sources = events["duration_source"]
    if catalogue:
        assert set(sources.unique()) == {"catalogue", "play", "longest_play"}
        at_catalogue = events.filter(pl.col("duration_source") == "catalogue")
        assert (at_catalogue["track_duration_ms"] == 200_000).all()  # a known duration is never changed
        replays = events.filter(pl.col("duration_source") == "play")
        assert (replays["track_duration_ms"] == replays["ms_played"]).all()
    else:
        assert set(sources.unique()) == {"longest_play"}
        longest = events.group_by("track_id").agg(pl.col("ms_played").max(), pl.col("track_duration_ms").first())
        assert (longest["ms_played"].clip(lower_bound=1) == longest["track_duration_ms"]).all()
    assert "durations from the longest play" in result.summary()


def test_lastfm_events_are_accepted_and_marked(tmp_path: Path) -> None:
    lines = ["uts,artist,track,album"] + [f"{BASE_MS // 1000 + i * 240},Artist {i % 7},Song {i},LP" for i in range(500)]
    path = tmp_path / "scrobbles.csv"
    path.write_text("\n".join(lines) + "\n")
    result = import_lastfm_scrobbles(path, key=KEY, defaults=EventDefaults(market="ZZ", user="bob"))
    validated = _validate(result.events)
    assert (validated.accepted, validated.rejected_count) == (500, 0), validated.messages(3)
    assert set(result.events["duration_source"]) == {"assumed"} and set(result.events["market"]) == {"ZZ"}
    assert result.inferred == {"durations assumed (210 s, played whole)": 500}


def test_cli_import_of_zz_replays_without_rejections(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNEWATCH_PSEUDONYM_KEY", KEY)
    path = tmp_path / "Streaming_History_Audio_2026.json"
    path.write_text(json.dumps(_export(400)))
    out = tmp_path / "events.ndjson"
    runner = CliRunner()
    imported = runner.invoke(app, ["metadata", "import-spotify-history", str(path), "--out", str(out)])
    assert imported.exit_code == 0, imported.output
    assert "market unknown (ZZ)" in imported.stderr
    replayed = runner.invoke(app, ["replay", str(out), "-q", "--output", "json"])
    assert replayed.exit_code == 0, replayed.output
    summary = json.loads(replayed.stdout)
    assert summary["events"]["accepted"] == 400 and summary["rejection_reasons"] == {}
