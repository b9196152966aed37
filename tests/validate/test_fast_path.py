"""The fast path (screens, cheap detectors, bit-coded exact reasons) gives every row the verdict of the slow reference.

The reference, :meth:`EnterpriseDataValidator.reference_reasons`, evaluates every rule's exact mask on every row.
The batches are simulated dirty traffic (with duplicates), the hostile corpus and randomly mutated events.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import msgspec
import polars as pl
import pytest

from tests.validate.corpus import HOSTILE, NOW_MS, event
from tunewatch.ingest.batch import RawBatch
from tunewatch.ingest.readers import read_events
from tunewatch.schema import FIELD_NAMES, FIELDS
from tunewatch.simulate import SimulationConfig, Simulator, write_stream
from tunewatch.validate import EnterpriseDataValidator, ValidationResult
from tunewatch.validate.rules import member_flag

CLOCK_MS = NOW_MS + 3 * 60_000  # the simulated stream starts at NOW_MS and lasts two minutes
CUSTOM = """
- name: hd_needs_premium
  when: "bitrate_kbps > 320"
  check: "tier in ('premium', 'family')"
  reason: hd_without_premium
  field: bitrate_kbps
- name: played_within_duration
  when: "event_type == 'play'"
  check: "ms_played <= track_duration_ms + 5000"
  reason: exceeds_duration
  field: ms_played
"""
JUNK: tuple[Any, ...] = (
    None, "", " ", "  x", "x ", True, False, 1.5, 0, -1, 2**40, "1e3", "3.0", " 7 ", "-0", "NaN", "\u202e",
    "\u200bplay", "BR", "br", "B", "BRA", "play", "play\x00", "Play", "ad", "error", "free", "premium", "ios",
    "iOS", "fwdbtn", "trackdone", "flac", "FLAC", "other", "radio", "10.0.0.1", "256.1.1.1", "::1", "fe80::1%eth0",
    "::ffff:192.0.2.1", "1:2:3:4:5:6:7:8:9", "x" * 70, "é" * 130, "2026-01-05T00:01:00Z", "2026-01-05 00:01:00+01:00",
    "yesterday", 1_767_571_260_000, 4_102_444_800_000, {"a": 1}, [1, 2],
)  # fmt: skip


def _mutants(seed: int, count: int) -> list[bytes]:
    """Valid events with one to three fields replaced by junk (JSON types and values of every kind)."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        record = event(event_id=f"mut-{seed}-{i}", ts=NOW_MS + rng.randrange(-300_000, 120_000))
        record["event_type"] = rng.choice(("play", "error", "ad"))
        for name in rng.sample(FIELD_NAMES, rng.randint(1, 3)):
            value = rng.choice(JUNK)
            if value is None:
                record.pop(name, None)
            else:
                record[name] = value
        out.append(msgspec.json.encode(record))
    return out


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Simulated dirty traffic, hostile lines and mutants, shuffled together, as one NDJSON file."""
    path = tmp_path_factory.mktemp("fastpath") / "sim.ndjson"
    config = SimulationConfig(minutes=2, events_per_minute=1500, seed=21, dirty_rate=0.3, duplicate_rate=0.05,
                              incidents=False)  # fmt: skip
    write_stream(Simulator(config), path)
    lines = path.read_bytes().splitlines()
    lines += [raw for raw, _ in HOSTILE.values()] + _mutants(5, 600)
    random.Random(3).shuffle(lines)
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def _late_count(result: ValidationResult) -> int:
    return sum(1 for reasons in result.rejected.get_column("reasons").to_list() if reasons == ["ts: late"])


def _compare(validator: EnterpriseDataValidator, batch: RawBatch) -> tuple[int, int]:
    """Validate ``batch`` and check it against the reference; return (schema-rejected, decoded) rows."""
    reference = validator.reference_reasons(batch)
    result = validator.validate(batch)
    lines = batch.lines_of(list(range(batch.frame.height)))
    expected = {no: reasons for no, reasons in zip(lines, reference, strict=True) if reasons}
    decoded = set(lines)
    rejected = zip(result.rejected["line_no"].to_list(), result.rejected["reasons"].to_list(), strict=True)
    got = {no: reasons for no, reasons in rejected if no in decoded and reasons != ["ts: late"]}
    assert got == expected  # same rows, same reasons, in the same order
    assert result.accepted + result.duplicates + _late_count(result) == batch.frame.height - len(expected)
    return len(expected), batch.frame.height


@pytest.mark.parametrize(("live", "custom"), [(False, None), (True, CUSTOM)])
def test_fast_path_matches_reference_on_dirty_stream(stream: Path, live: bool, custom: str | None) -> None:
    validator = EnterpriseDataValidator(clock=lambda: CLOCK_MS / 1000, live=live, custom_rules=custom)
    rejected = decoded = 0
    for batch in read_events(stream, chunk_bytes=256 * 1024):
        r, d = _compare(validator, batch)
        rejected += r
        decoded += d
    assert decoded > 3000
    assert rejected > 0.2 * decoded  # the stream is dirty enough to exercise every reason path


def test_fast_path_matches_reference_on_text_records(stream: Path) -> None:
    """The API path: all-text frames (no typed columns, text not pre-screened as clean)."""
    objects = []
    for raw in stream.read_bytes().splitlines()[:3000]:
        try:
            record = msgspec.json.decode(raw)
        except (msgspec.DecodeError, ValueError, RecursionError):  # not JSON: the records API never sees these
            continue
        if isinstance(record, dict):
            objects.append(record)
    validator = EnterpriseDataValidator(clock=lambda: CLOCK_MS / 1000)
    for start in range(0, len(objects), 1000):
        batch = RawBatch.from_records(objects[start : start + 1000])
        rejected, _ = _compare(validator, batch)
        assert rejected > 0


def test_membership_flags_match_enum_casts() -> None:
    """The cheap membership flag of a small enumeration is null exactly where an ``Enum`` cast is."""
    tricky = [None, "", " ", "ios ", " ios", "IOS", "ios\x00", "io", "iosx", "i\u200bos", "web", "tv", "car",
              "speaker", "other", "others", "trackdone", "unexpected-exit", "unexpected-exi", "recommendation",
              "recommendatio", "recommendation ", "ad", "play", "error", "free", "duo", "flac", "é", "\U0001f600",
              ]  # fmt: skip
    frame = pl.DataFrame({"text": tricky}, schema={"text": pl.String})
    for f in FIELDS:
        if f.choices is None:
            continue
        flags = frame.select(
            member_flag(pl.col("text"), f.choices).is_null().alias("flag"),
            pl.col("text").cast(pl.Enum(list(f.choices)), strict=False).is_null().alias("enum"),
        )
        assert flags.get_column("flag").to_list() == flags.get_column("enum").to_list(), f.name
