"""Every hostile input gets exactly its reasons, through the real reader and validator, never a crash or a drop."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.validate.corpus import HOSTILE, NOW_MS, line
from tunewatch.ingest.readers import parse_ndjson_bytes, read_events
from tunewatch.validate import EnterpriseDataValidator, ValidationResult


def _validator() -> EnterpriseDataValidator:
    return EnterpriseDataValidator(clock=lambda: NOW_MS / 1000)


def _check(result: ValidationResult, expected: set[str], *, others: int) -> None:
    assert result.received == result.accepted + result.rejected_count + result.duplicates
    assert result.received == others + 1
    assert result.duplicates == 0
    if expected:
        assert result.rejected_count == 1, result.messages()
        assert set(result.rejected.get_column("reasons").to_list()[0]) == expected
        assert result.accepted == others
    else:
        assert result.rejected_count == 0, result.messages()
        assert result.accepted == others + 1


def test_corpus_is_large_enough() -> None:
    assert len(HOSTILE) >= 40
    assert sum(1 for _, expected in HOSTILE.values() if expected) >= 40


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_line_alone(name: str) -> None:
    raw, expected = HOSTILE[name]
    result = _validator().validate(parse_ndjson_bytes(raw))
    _check(result, expected, others=0)
    if expected:
        kept = result.rejected.get_column("raw").to_list()[0]
        assert raw.startswith(kept)  # raw bytes as received (an over-long line: its first 64 KiB)


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_line_among_clean_lines(name: str) -> None:
    """The same verdict when the line sits in a chunk of clean lines (the columnar fast path's territory)."""
    raw, expected = HOSTILE[name]
    before = [line(event_id=f"ok-{i}") for i in range(3)]
    after = [line(event_id=f"ok-{i}") for i in range(3, 6)]
    payload = b"\n".join([*before, raw, *after]) + b"\n"
    result = _validator().validate(parse_ndjson_bytes(payload))
    _check(result, expected, others=6)
    if expected:
        assert result.rejected.get_column("line_no").to_list() == [4]


def test_whole_corpus_through_the_file_reader(tmp_path: Path) -> None:
    path = tmp_path / "hostile.ndjson"
    lines = [line(event_id=f"ok-{i}") for i in range(10)] + [raw for raw, _ in HOSTILE.values()]
    path.write_bytes(b"\n".join(lines) + b"\n")
    validator = _validator()
    results = [validator.validate(batch) for batch in read_events(path, chunk_bytes=4096)]
    received = sum(r.received for r in results)
    assert received == len(lines)
    assert received == sum(r.accepted + r.rejected_count + r.duplicates for r in results)
    rejected = sum(r.rejected_count for r in results)
    # the clean event lines share one event_id, so the accepted inert ones after the first are duplicates
    inert = sum(1 for _, expected in HOSTILE.values() if not expected)
    assert rejected == len(HOSTILE) - inert
