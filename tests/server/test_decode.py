"""JSON bodies are split into their elements' own bytes, not decoded and re-encoded; the events are the same."""

from __future__ import annotations

import json

import pytest
from polars.testing import assert_frame_equal

from tests.conftest import BASE_MS, make_play
from tunewatch.ingest.ndjson import parse_ndjson_bytes
from tunewatch.server.decode import BodyError, LinesPayload, count_byte, decode_body


def _lines(body: bytes) -> LinesPayload:
    payload = decode_body(body, "application/json")
    assert isinstance(payload, LinesPayload)
    return payload


def test_each_array_element_becomes_its_own_bytes_as_one_line() -> None:
    body = b'[ {"event_id": "a", "user_id": "\\u00e9"} ,{"event_id":"b"}, 7 ]'
    payload = _lines(body)
    assert payload.lines == b'{"event_id": "a", "user_id": "\\u00e9"}\n{"event_id":"b"}\n7\n'
    assert (payload.count, payload.kind, payload.position(3)) == (3, "index", 2)


def test_one_object_is_one_line_and_an_empty_array_none() -> None:
    assert _lines(b' {"event_id": "a"} ').lines == b'{"event_id": "a"}\n'
    assert (_lines(b"[]").lines, _lines(b"[]").count) == (b"", 0)


def test_split_and_reencoded_bodies_give_the_same_columns() -> None:
    events = [make_play(i, BASE_MS + i, user_id=f"usér-{i}", offline=i % 2 == 0) for i in range(50)]
    events[7]["ms_played"] = "not a number"  # rejected later by validation, the same way on both paths
    compact = json.dumps(events, ensure_ascii=False).encode()
    pretty = json.dumps(events, indent=2).encode()  # line breaks inside elements: the decode-and-re-encode path
    split, reencoded = _lines(compact), _lines(pretty)
    assert split.lines != reencoded.lines  # the first path kept the client's bytes
    assert split.lines == b"".join(json.dumps(e, ensure_ascii=False).encode() + b"\n" for e in events)
    a = parse_ndjson_bytes(split.lines, source="http").frame
    b = parse_ndjson_bytes(reencoded.lines, source="http").frame
    assert a.height == 50
    assert_frame_equal(a, b)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b'[{"event_id": "\xff"}]', 400),  # not UTF-8: the elements are not checked for it by the split
        (b'[{"event_id": "a"},]', 400),
        (b'[{"event_id": "a"} {"event_id": "b"}]', 400),
        (b'{"event_id": "a"} trailing', 400),
        (b'[{"event_id": NaN}]', 400),
        (b'[{"event_id": "a\x01"}]', 400),
        (b"[" * 10_000 + b"]" * 10_000, 400),
    ],
)
def test_bodies_that_are_not_json_are_refused_whole(body: bytes, status: int) -> None:
    with pytest.raises(BodyError) as caught:
        decode_body(body, "application/json")
    assert caught.value.status == status


@pytest.mark.parametrize("limit", [1, 2, 3, 5])
def test_the_element_bound_is_exact_at_the_limit_whatever_the_commas_inside_strings(limit: int) -> None:
    """The cheap bound (body length, then commas) only decides when to count exactly: an array of ``limit``
    elements passes, one more is 413, and commas inside strings or nested values do not count."""
    element = b'{"event_id": "a,b,,c", "n": [1, 2, 3]}'
    at_limit = b"[" + b",".join([element] * limit) + b"]"
    assert decode_body(at_limit, "application/json", max_items=limit).count == limit
    tiny = b"[" + b",".join([b"1"] * limit) + b"]"  # the shortest array of ``limit`` elements: 2 * limit + 1 bytes
    assert decode_body(tiny, "application/json", max_items=limit).count == limit
    for over in (b"[" + b",".join([element] * (limit + 1)) + b"]", b"[" + b",".join([b"1"] * (limit + 1)) + b"]"):
        with pytest.raises(BodyError) as caught:
            decode_body(over, "application/json", max_items=limit)
        assert caught.value.status == 413 and f"{limit + 1} array elements" in caught.value.message


@pytest.mark.parametrize(
    ("body", "lines", "positions"),
    [
        (b'{"a":1}\n{"b":2}\n', b'{"a":1}\n{"b":2}\n', [1, 2]),  # no blank line: the body itself
        (b'{"a":1}\r\n{"b":2}', b'{"a":1}\r\n{"b":2}\n', [1, 2]),  # CRLF kept, a last newline added
        (b'\n{"a":1}\n\n{"b":2}\n\n', b'{"a":1}\n{"b":2}\n', [2, 4]),  # blank lines dropped, numbers kept
        (b'{"a":1}\n \t\r\n\x0b\x0c\n{"b":2}', b'{"a":1}\n{"b":2}\n', [1, 4]),  # whitespace-only lines are blank
        (b' {"a":1}\n\t{"b":2}\n', b' {"a":1}\n\t{"b":2}\n', [1, 2]),  # indented lines are not blank
    ],
)
def test_ndjson_bodies_keep_their_non_blank_lines_and_numbers(body: bytes, lines: bytes, positions: list[int]) -> None:
    payload = decode_body(body, "application/x-ndjson")
    assert isinstance(payload, LinesPayload)
    assert payload.lines == lines and payload.count == len(positions)
    assert [payload.position(k) for k in range(1, payload.count + 1)] == positions


def test_count_byte_counts_across_its_pieces() -> None:
    data = b"\n".join([b"x" * 1000] * 5000) + b"\n\n"  # over one 4 MiB piece
    assert count_byte(data, ord("\n")) == data.count(b"\n") == 5001
    assert count_byte(b"", ord("\n")) == 0 and count_byte(b"a,b,,c", ord(",")) == 3


@pytest.mark.parametrize("lead", [b"", b" ", b"\t  "])
def test_leading_space_before_an_array_or_an_object_is_skipped_as_before(lead: bytes) -> None:
    assert _lines(lead + b'[{"event_id": "a"}, {"event_id": "b"}]').count == 2
    assert _lines(lead + b'{"event_id": "a"}').lines == b'{"event_id": "a"}\n'


@pytest.mark.parametrize("body", [b"", b" ", b"\n\r\t \x0b\x0c"])
def test_a_body_of_nothing_but_whitespace_is_refused_as_empty(body: bytes) -> None:
    with pytest.raises(BodyError, match="empty body") as caught:
        decode_body(body, "application/json")
    assert caught.value.status == 400


def test_request_headers_are_read_once_per_request_first_occurrence_first() -> None:
    from tunewatch.server.guard import request_headers

    scope = {"headers": [(b"x-api-key", b"first"), (b"content-type", b"application/json"), (b"x-api-key", b"2nd")]}
    headers = request_headers(scope)
    assert headers == {"x-api-key": "first", "content-type": "application/json"}
    scope["headers"] = []  # kept in the scope: not read again
    assert request_headers(scope) is headers
