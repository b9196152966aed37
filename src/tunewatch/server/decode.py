"""Request bodies to event lines: JSON array, NDJSON or msgpack; gzip or zstd; bounded sizes and counts.

JSON and NDJSON bodies become NDJSON *lines* (one non-blank line per event), so that many requests can be
joined into one chunk and parsed by the columnar reader in a single call (see :mod:`tunewatch.server.batcher`).
msgpack bodies are decoded to records (a msgpack map is not JSON: NaN, binary values) and run on their own.

Each body is decoded into columns once, by that columnar reader. A JSON array is only *split* into its elements
(:class:`msgspec.Raw` slices: the JSON is checked, no Python object is built for an event), and each element's
own bytes become its line; only a body with line breaks inside its elements (pretty-printed JSON) is decoded and
re-encoded one element per line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import msgpack
import msgspec
import numpy as np

from tunewatch.ingest.batch import RawBatch
from tunewatch.ingest.bounds import json_array_items, msgpack_items
from tunewatch.ingest.compression import BodyError, BoundedDecoder, decompress

__all__ = [
    "BodyError", "BoundedDecoder", "LinesPayload", "Payload", "RecordsPayload", "count_byte", "decode_body",
    "decompress",
]  # fmt: skip

JSON_TYPES = frozenset({"application/json"})
NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines"})
MSGPACK_TYPES = frozenset({"application/msgpack", "application/x-msgpack", "application/vnd.msgpack"})
ACCEPTED_TYPES = JSON_TYPES | NDJSON_TYPES | MSGPACK_TYPES
SUPPORTED = "application/json (array or object), application/x-ndjson, application/msgpack"
DEFAULT_MAX_ITEMS = 100_000
_LINES = msgspec.json.Encoder()  #: re-encodes decoded JSON records one per line (``encode_lines``)
_ELEMENTS = msgspec.json.Decoder(list[msgspec.Raw])  #: a JSON array's elements as their own bytes, undecoded
_VALUE = msgspec.json.Decoder(msgspec.Raw)  #: one JSON value, checked, undecoded
_COMMA = ord(",")
_NEWLINE = ord("\n")
_PIECE = 1 << 22  #: bytes compared at a time by :func:`count_byte`
#: the bytes ``bytes.strip`` removes, by value: a line starting with one of them may be blank
_WHITESPACE = np.zeros(256, dtype=np.bool_)
_WHITESPACE[[9, 10, 11, 12, 13, 32]] = True
#: the bytes ``bytes.lstrip`` removes, at the start of a body (a match, not a stripped copy of the body)
_LEADING_SPACE = re.compile(rb"[\t\n\x0b\x0c\r ]*")


@dataclass(slots=True)
class LinesPayload:
    """One request's events as NDJSON lines, each ending in ``\\n``; ``positions`` maps line k to its number."""

    lines: bytes
    count: int
    kind: Literal["line", "index"]  # NDJSON bodies report 1-based lines, JSON arrays 0-based indexes
    positions: list[int] | None = None  # original position of each kept line (when blank lines were dropped)

    def position(self, k: int) -> int:
        """Position, as the client knows it, of the request's ``k``-th (1-based) event line."""
        if self.positions is not None:
            return self.positions[k - 1]
        return k if self.kind == "line" else k - 1


@dataclass(slots=True)
class RecordsPayload:
    """One msgpack request's events as a raw batch, and the body they came from (for the ingest WAL)."""

    batch: RawBatch
    count: int
    raw: bytes = b""


Payload = LinesPayload | RecordsPayload


def decode_body(body: bytes, content_type: str | None, max_items: int = DEFAULT_MAX_ITEMS) -> Payload:
    """Parse a (decompressed) body by its ``Content-Type`` (JSON, NDJSON or msgpack; anything else is 415).

    Raises :class:`BodyError`: 415 for another or no media type (a browser can send ``text/plain`` and
    form bodies cross-site without asking), 413 for more than ``max_items`` lines, array elements or
    msgpack items (counted before decoding), 400 for an empty or undecodable body.
    """
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media not in ACCEPTED_TYPES:
        shown = repr(content_type) if content_type else "none"
        raise BodyError(415, f"unsupported Content-Type {shown}: use {SUPPORTED}")
    if not body or body.isspace():  # what ``not body.strip()`` says, without copying the body
        raise BodyError(400, f"empty body: send events as {SUPPORTED}")
    if media in MSGPACK_TYPES:
        _check_items(msgpack_items(body), max_items, "msgpack items")
        return decode_msgpack(body, max_items)
    if media in NDJSON_TYPES:
        _check_items(ndjson_lines(body), max_items, "lines")
        return _ndjson(body)
    if _may_exceed(body, max_items):  # a cheap upper bound first: exact counting only when it is passed
        _check_items(json_array_items(body), max_items, "array elements")
    return _json(body)


def ndjson_lines(body: bytes) -> int:
    """Lines of an NDJSON body (blank ones included; a last line without a newline counts)."""
    return count_byte(body, _NEWLINE) + (0 if body.endswith(b"\n") or not body else 1)


def count_byte(data: bytes, value: int) -> int:
    """How many times the byte ``value`` occurs in ``data``: a NumPy comparison, in 4 MiB pieces (several times
    faster than ``bytes.count`` for one byte, with bounded temporaries)."""
    arr = np.frombuffer(data, dtype=np.uint8)
    return sum(int(np.count_nonzero(arr[i : i + _PIECE] == value)) for i in range(0, arr.size, _PIECE))


def _may_exceed(body: bytes, limit: int) -> bool:
    """Whether a JSON body may hold more than ``limit`` array elements: at most one more than its commas, and only
    a body of at least ``2 * limit`` bytes has room for that many (an element and its comma take two bytes).

    The commas are counted by :func:`count_byte`."""
    return len(body) >= 2 * limit and count_byte(body, _COMMA) + 1 > limit


def _check_items(count: int, limit: int, what: str) -> None:
    if count > limit:
        raise BodyError(413, f"body has {count} {what}, more than the limit of {limit} per request")


_NOT_UTF8 = "body is not valid UTF-8 JSON; send NDJSON to have bad lines rejected one by one"


def _is_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _json(body: bytes) -> LinesPayload:
    """A JSON array (or one value) as one line per element: each element's own bytes, not re-encoded."""
    if not body.isascii() and not _is_utf8(body):  # Raw slices are not checked for UTF-8: checked here, once
        raise BodyError(400, _NOT_UTF8)
    if b"\n" in body or b"\r" in body:  # line breaks between tokens: an element may span lines
        return _json_reencoded(body)
    leading = _LEADING_SPACE.match(body)  # matches every body (perhaps empty)
    start = leading.end() if leading is not None else 0
    array = body[start : start + 1] == b"["
    try:
        elements = _ELEMENTS.decode(body) if array else [_VALUE.decode(body)]
    except (msgspec.DecodeError, RecursionError, ValueError) as exc:
        raise BodyError(400, f"body is not valid JSON: {str(exc)[:120]}") from exc
    if not elements:
        return LinesPayload(b"", 0, "index")
    # the Raw slices are buffers: joined without a copy of each; the empty last item ends the last line
    return LinesPayload(b"\n".join([*elements, b""]), len(elements), "index")


def _json_reencoded(body: bytes) -> LinesPayload:
    """The slow path of :func:`_json`, for bodies with line breaks: decoded, then re-encoded one per line."""
    try:
        value = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError, ValueError) as exc:
        raise BodyError(400, f"body is not valid JSON: {str(exc)[:120]}") from exc
    records = value if isinstance(value, list) else [value]
    return LinesPayload(_LINES.encode_lines(records), len(records), "index")


def _ndjson(body: bytes) -> LinesPayload:
    """An NDJSON body as its lines: the body itself when no line can be blank (one NumPy pass over the line
    starts), else its non-blank lines with their original numbers."""
    arr = np.frombuffer(body, dtype=np.uint8)
    starts = np.flatnonzero(arr == _NEWLINE) + 1  # of the lines after the first
    ends_in_newline = body.endswith(b"\n")
    firsts = arr[starts[:-1] if ends_in_newline else starts]
    if not _WHITESPACE[arr[0]] and not _WHITESPACE[firsts].any():
        count = starts.size + (0 if ends_in_newline else 1)
        return LinesPayload(body if ends_in_newline else body + b"\n", count, "line")
    raw = body.split(b"\n")
    kept = [line for line in raw if line.strip()]
    positions = None
    if len(kept) != len(raw) - (raw[-1] == b""):
        positions = [i + 1 for i, line in enumerate(raw) if line.strip()]
    return LinesPayload(b"".join([line + b"\n" for line in kept]), len(kept), "line", positions)


def decode_msgpack(body: bytes, max_items: int = DEFAULT_MAX_ITEMS) -> RecordsPayload:
    """A msgpack body (an array of maps, or one map) as a raw batch; :class:`BodyError` 400 when undecodable."""
    try:
        value = msgpack.unpackb(body, raw=False, strict_map_key=False, max_array_len=max_items)
    except (ValueError, TypeError, msgpack.UnpackException, RecursionError) as exc:
        raise BodyError(400, f"body is not valid msgpack: {(str(exc) or type(exc).__name__)[:120]}") from exc
    records = value if isinstance(value, list) else [value]
    batch = RawBatch.from_records(records, source="http")
    return RecordsPayload(batch, batch.received, body)
