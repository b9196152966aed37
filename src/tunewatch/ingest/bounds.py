"""Count the events of a body before decoding it, so that a request's work is bounded before it starts.

Decoding a JSON array of a million empty objects takes a gigabyte of Python objects; counting its top-level
elements first costs a few C passes over the bytes: string literals are blanked with one regular-expression
substitution (so brackets and commas inside strings do not count), then the nesting depth is a cumulative sum
(NumPy, in chunks) and the elements are the commas at depth one, plus one. A msgpack array says its length in
its first bytes. NDJSON lines are counted with ``bytes.count`` while the body streams in (see
:mod:`tunewatch.server.ingest_http`).

>>> json_array_items(b'[{"a": "x,[]"}, {"b": [1, 2]}, 3]')
3
>>> json_array_items(b'{"a": 1}'), json_array_items(b'[ ]')
(1, 0)
>>> msgpack_items(bytes([0x93, 1, 2, 3])), msgpack_items(bytes([0x80]))
(3, 1)
"""

from __future__ import annotations

import re
import struct
from typing import Final

import numpy as np

#: a JSON string literal (escapes included), matched without backtracking
_STRING: Final = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"', re.DOTALL)
_CHUNK: Final = 1 << 22
_OPEN: Final = np.zeros(256, dtype=np.int8)
_OPEN[[ord("["), ord("{")]] = 1
_OPEN[[ord("]"), ord("}")]] = -1


def json_array_items(body: bytes) -> int:
    """Top-level elements of a JSON array body (1 for any other JSON value); exact for valid JSON."""
    text = body.strip()
    if not text.startswith(b"["):
        return 1
    blank = _STRING.sub(b'""', text)
    data = np.frombuffer(blank, dtype=np.uint8)
    depth0 = 0
    commas = 0
    for start in range(0, data.size, _CHUNK):  # chunks bound the temporary arrays (int32 per byte)
        chunk = data[start : start + _CHUNK]
        depth = np.cumsum(_OPEN[chunk], dtype=np.int32) + depth0
        # a comma does not change the depth: the depth *at* it is the depth after the byte before it
        commas += int(np.count_nonzero((chunk == ord(",")) & (depth == 1)))
        depth0 = int(depth[-1])
    inner = blank[1:].lstrip()
    return 0 if inner.startswith(b"]") else commas + 1


def msgpack_items(body: bytes) -> int:
    """Elements of a msgpack array body, read from its header (1 for any other value; 0 for no bytes)."""
    if not body:
        return 0
    first = body[0]
    if 0x90 <= first <= 0x9F:
        return first & 0x0F
    if first == 0xDC and len(body) >= 3:
        return int(struct.unpack_from(">H", body, 1)[0])
    if first == 0xDD and len(body) >= 5:
        return int(struct.unpack_from(">I", body, 1)[0])
    return 1
