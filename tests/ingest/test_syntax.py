"""The JSON syntax test that lets a chunk with broken lines keep the columnar path: what it passes is JSON."""

from __future__ import annotations

import json

import msgspec
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.validate.corpus import NOW_MS, TS, line
from tunewatch.ingest.ndjson import _parse_lines, parse_ndjson_bytes
from tunewatch.ingest.screen import line_spans
from tunewatch.ingest.syntax import suspect_lines
from tunewatch.validate import EnterpriseDataValidator

_DECODE = msgspec.json.Decoder()
#: bytes that make or break JSON, a few ordinary ones, and UTF-8 lead, continuation and invalid bytes
_ALPHABET = [*b'{}[]",:0123456789-+.eEtrufalsn \\/\t\r', 0xC3, 0xA9, 0xE2, 0x82, 0xAC, 0xED, 0xA0, 0xF0, 0x9F, 0xFF, 0]
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**30), 10**30), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)  # fmt: skip
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


def _is_object(data: bytes) -> bool:
    try:
        return isinstance(_DECODE.decode(data), dict)
    except (msgspec.DecodeError, RecursionError):
        return False


def _suspect(data: bytes) -> bool:
    chunk = data + b"\n"
    return bool(suspect_lines(chunk, *line_spans(chunk))[0])


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(_ALPHABET), max_size=40).map(bytes), st.integers(0, 3))
def test_a_line_it_passes_is_blank_or_one_json_object(noise: bytes, where: int) -> None:
    base = b'{"event_id": "e1", "ms_played": -1.5e3, "tags": [true, false, null, {}], "x": "\\u00e9\\n"}'
    cut = len(base) * where // 4
    data = (base[:cut] + noise + base[cut:]).replace(b"\n", b" ")
    if not _suspect(data):
        assert not data.strip(b" \t\r") or _is_object(data)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=8), _VALUES, max_size=6), st.booleans())
def test_json_objects_as_writers_emit_them_pass(value: dict[str, object], ascii_only: bool) -> None:
    data = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", errors="surrogatepass")
    surrogate = any(0xD800 <= ord(c) <= 0xDFFF for c in data.decode("utf-8", errors="surrogatepass"))
    if _is_object(data) and b"\\ud" not in data and not surrogate and b"e+" not in data and b"e-" not in data:
        assert not _suspect(data), data


def test_a_chunk_with_broken_lines_keeps_the_columnar_path_and_the_verdicts() -> None:
    lines = [line(event_id=f"e{i}", ts=TS + i) for i in range(40)]
    lines[3] = b'{"event_id": "broken-1", "ts": '  # truncated by a crashed writer
    lines[20] = b"[1, 2]"
    lines[31] = line(event_id="bad-market", market="xx")
    data = b"\n".join([*lines[:10], b"", b"  ", *lines[10:]]) + b"\n"
    batch = parse_ndjson_bytes(data, source="f")
    assert batch.raw_lines is None  # the columnar batch (the line-by-line one keeps every row's bytes)
    exact = _parse_lines(data, "f", 0, 64 * 1024)
    assert [(u.line_no, u.raw, u.reason) for u in batch.undecodable] == [
        (4, lines[3].strip(), "line: invalid_json"), (23, b"[1, 2]", "line: not_object")
    ]  # fmt: skip
    assert batch.undecodable == exact.undecodable
    fast = EnterpriseDataValidator(clock=lambda: NOW_MS / 1000).validate(batch)
    slow = EnterpriseDataValidator(clock=lambda: NOW_MS / 1000).validate(exact)
    assert fast.valid.equals(slow.valid) and fast.rejected.equals(slow.rejected)
    assert sorted(fast.rejected.select("line_no", "reasons").rows()) == [
        (4, ["line: invalid_json"]), (23, ["line: not_object"]), (34, ["market: unknown_country"])
    ]  # fmt: skip
    assert fast.valid.height == 37 and fast.valid["event_id"].to_list()[:4] == ["e0", "e1", "e2", "e4"]


def test_a_line_of_other_whitespace_is_no_event_on_either_path() -> None:
    data = b"\n".join([line(event_id="a"), b"\x0b \x0c", b'{"event_id": "cut', line(event_id="b")]) + b"\n"
    batch = parse_ndjson_bytes(data)
    exact = _parse_lines(data, "bytes", 0, 64 * 1024)
    assert batch.raw_lines is None and batch.undecodable == exact.undecodable
    assert [u.line_no for u in batch.undecodable] == [3] and batch.received == exact.received == 3
    assert parse_ndjson_bytes(b"\x0b").received == 0


def test_a_flagged_line_that_decodes_sends_the_chunk_line_by_line() -> None:
    deep = b'{"a": ' + b"[" * 40 + b"]" * 40 + b"}"  # deeper than the test follows, yet JSON
    data = b"\n".join([line(event_id="a"), b'{"event_id": "cut', deep, line(event_id="b")]) + b"\n"
    batch = parse_ndjson_bytes(data)
    assert batch.raw_lines is not None and [u.line_no for u in batch.undecodable] == [2]
    assert batch.frame.get_column("event_id").to_list() == ["a", None, "b"]
    assert isinstance(batch.frame, pl.DataFrame)
