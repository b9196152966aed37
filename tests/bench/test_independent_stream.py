"""bench/independent_stream.py writes a stream in the event schema that replays with an exact balance, and a
labels file in the contract's shape with the nine incident kinds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tunewatch.evaluate.backtest import load_labels
from tunewatch.pipeline.replay import replay_files

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "independent_stream.py"
KINDS = {
    "cdn_outage", "bad_encode", "startup_regression", "rec_regression", "platform_silence", "low_bitrate",
    "ad_drop", "bot_farm", "traffic_drop",
}  # fmt: skip


def test_independent_stream_replays_balanced_with_contract_labels(tmp_path: Path) -> None:
    out = tmp_path / "ind.ndjson"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--seed", "3", "--rate", "40", "--days", "1", "--out", str(out)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    lines = out.read_bytes().count(b"\n")
    malformed = sum(1 for line in out.read_text().splitlines() if '"event_id": "b' in line or '"event_id":"b' in line)
    assert f"{lines:,} lines" in done.stdout
    summary = replay_files([out])
    c = summary.counters
    assert c.received == lines and c.balanced
    assert c.rejected == malformed > 0  # every hostile line rejected, every generated event accepted
    incidents = load_labels(out.with_suffix(".labels.json"))
    assert {i.kind for i in incidents} == KINDS
    schema_dims = {"market", "cdn", "track_id", "platform", "source", "tier", "artist_id"}
    assert all(i.dims and set(i.dims) <= schema_dims and i.end > i.start for i in incidents)
    bot = next(i for i in incidents if i.kind == "bot_farm")
    assert bot.dims["artist_id"].startswith("a")
