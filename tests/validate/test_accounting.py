"""Accounting invariant: received == accepted + rejected + duplicates, exactly, whatever the input.

Property-based (hypothesis) over generated dirty streams, plus a fuzz test of the NDJSON decoder with random
and mutated bytes.
"""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.validate.corpus import NOW_MS, TS, event, line
from tunewatch.ingest.readers import parse_ndjson_bytes
from tunewatch.schema import FIELD_NAMES
from tunewatch.validate import EnterpriseDataValidator, ValidationResult

_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

junk_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=80),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    st.sampled_from(["", " ", "play", "ad", "free", "BR", "br", "true", "\u202e", "1e3", "3.0", "-1"]),
)


@st.composite
def dirty_lines(draw: st.DrawFn) -> tuple[list[bytes], set[int]]:
    """Lines of valid, mutated, duplicated and broken events; also the indices of the repeated-id lines."""
    n = draw(st.integers(min_value=0, max_value=40))
    lines: list[bytes] = []
    for i in range(n):
        kind = draw(st.sampled_from(["valid", "mutated", "repeat", "broken", "blank"]))
        ts = TS + draw(st.integers(min_value=-200_000, max_value=60_000))
        if kind == "valid":
            lines.append(line(event_id=f"v{i}", ts=ts))
        elif kind == "mutated":
            fields = draw(st.lists(st.sampled_from(FIELD_NAMES), min_size=1, max_size=3))
            overrides: dict[str, Any] = {f: draw(junk_values) for f in fields}
            overrides.setdefault("event_id", f"m{i}")
            record = event(ts=ts)
            record.update(overrides)
            try:
                lines.append(msgspec.json.encode(record))
            except (msgspec.EncodeError, OverflowError):
                lines.append(line(event_id=f"m{i}", ts=ts))
        elif kind == "repeat" and lines:
            lines.append(draw(st.sampled_from(lines)))
        elif kind == "broken":
            lines.append(draw(st.binary(max_size=60)).replace(b"\n", b" "))
        else:
            lines.append(b"   ")
    return lines, set()


def _events_in(payload: bytes) -> int:
    return sum(1 for part in payload.split(b"\n") if part.strip())


def _assert_accounted(result: ValidationResult) -> None:
    assert result.received == result.accepted + result.rejected_count + result.duplicates
    assert result.rejected.height == result.rejected_count
    for reasons in result.rejected.get_column("reasons").to_list():
        assert reasons, "a rejected event always carries at least one reason"
        assert all(": " in r for r in reasons)


@_SETTINGS
@given(dirty_lines(), st.integers(min_value=1, max_value=5))
def test_dirty_streams_are_fully_accounted(stream: tuple[list[bytes], set[int]], n_batches: int) -> None:
    lines, _ = stream
    validator = EnterpriseDataValidator(clock=lambda: NOW_MS / 1000)
    size = max(1, len(lines) // n_batches)
    total_received = 0
    expected = 0
    for start in range(0, len(lines), size):
        payload = b"\n".join(lines[start : start + size]) + b"\n"
        result = validator.validate(parse_ndjson_bytes(payload))
        _assert_accounted(result)
        total_received += result.received
        expected += _events_in(payload)
    assert total_received == expected


@_SETTINGS
@given(st.lists(st.integers(min_value=0, max_value=10**9), unique=True, max_size=60))
def test_distinct_ids_are_never_duplicates(ids: list[int]) -> None:
    validator = EnterpriseDataValidator(clock=lambda: NOW_MS / 1000)
    payload = b"\n".join(line(event_id=f"id-{i}") for i in ids)
    half = len(payload) // 2
    cut = payload.find(b"\n", half)
    parts = [payload] if cut < 0 else [payload[:cut], payload[cut + 1 :]]
    results = [validator.validate(parse_ndjson_bytes(p)) for p in parts if p]
    assert sum(r.duplicates for r in results) == 0
    assert sum(r.accepted for r in results) == len(ids)


@_FUZZ
@given(st.binary(max_size=400))
def test_fuzz_random_bytes(data: bytes) -> None:
    result = EnterpriseDataValidator(clock=lambda: NOW_MS / 1000).validate(parse_ndjson_bytes(data))
    _assert_accounted(result)
    assert result.received == _events_in(data + b"\n")


@st.composite
def mutated_line(draw: st.DrawFn) -> bytes:
    """A valid line with random byte replacements, insertions and deletions."""
    data = bytearray(line(user_agent="Mozilla/5.0", ip_addr="10.0.0.1"))
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        op = draw(st.sampled_from(["replace", "insert", "delete"]))
        pos = draw(st.integers(min_value=0, max_value=max(0, len(data) - 1)))
        byte = draw(st.integers(min_value=0, max_value=255))
        if op == "replace" and data:
            data[pos] = byte
        elif op == "insert":
            data.insert(pos, byte)
        elif data:
            del data[pos]
    return bytes(data)


@_SETTINGS
@given(st.lists(mutated_line(), min_size=1, max_size=8))
def test_fuzz_mutated_lines(mutants: list[bytes]) -> None:
    payload = b"\n".join([line(event_id="clean-1"), *mutants, line(event_id="clean-2")]) + b"\n"
    result = EnterpriseDataValidator(clock=lambda: NOW_MS / 1000).validate(parse_ndjson_bytes(payload))
    _assert_accounted(result)
    assert result.received == _events_in(payload)
