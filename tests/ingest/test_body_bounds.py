"""Bounded decompression and pre-decoding counts of request bodies (``tunewatch.ingest.compression``/``bounds``)."""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any

import msgpack
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from tunewatch.ingest.bounds import json_array_items, msgpack_items
from tunewatch.ingest.compression import BodyError, BoundedDecoder, decompress

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet=st.characters(codec="utf-8"), max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(JSON_VALUES, max_size=30), st.booleans())
def test_json_array_items_counts_exactly(values: list[Any], pretty: bool) -> None:
    body = json.dumps(values, indent=2 if pretty else None).encode()
    assert json_array_items(body) == len(values)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.dictionaries(st.text(max_size=5), st.integers(-(2**63), 2**63 - 1), max_size=3), max_size=70))
def test_msgpack_items_reads_the_header(values: list[dict[str, int]]) -> None:
    assert msgpack_items(msgpack.packb(values)) == len(values)
    assert msgpack_items(msgpack.packb(list(range(70_000)))) == 70_000
    assert msgpack_items(msgpack.packb({"a": 1})) == 1


@pytest.mark.parametrize("piece", [1, 7, 4096, 1 << 20])
@pytest.mark.parametrize("encoding", ["gzip", "zstd", "deflate", "identity"])
def test_every_member_or_frame_is_decoded_whatever_the_piece_size(encoding: str, piece: int) -> None:
    parts = [b"".join(b'{"event_id": "e%d"}\n' % i for i in range(k * 500, k * 500 + 500)) for k in range(3)]
    compress = {
        "gzip": gzip.compress,
        "zstd": zstandard.ZstdCompressor().compress,
        "deflate": zlib.compress,
        "identity": lambda b: b,
    }[encoding]
    body = b"".join(compress(p) for p in parts) if encoding in ("gzip", "zstd") else compress(b"".join(parts))
    decoder = BoundedDecoder(encoding, max_bytes=10**7)
    out = b"".join(decoder.feed(body[i : i + piece]) for i in range(0, len(body), piece))
    decoder.finish()
    assert out == b"".join(parts)


@pytest.mark.parametrize("encoding", ["gzip", "zstd"])
def test_output_is_bounded_while_decompressing(encoding: str) -> None:
    bomb = (gzip.compress if encoding == "gzip" else zstandard.ZstdCompressor(level=19).compress)(b"\n" * 50_000_000)
    decoder = BoundedDecoder(encoding, max_bytes=1_000_000)
    produced = 0
    with pytest.raises(BodyError) as err:
        for i in range(0, len(bomb), 1024):
            produced += len(decoder.feed(bomb[i : i + 1024]))
    assert err.value.status == 413 and produced <= 1_000_000
    assert decoder.produced <= 1_000_000 + 512 * 1024  # zstd: at most one piece's slack past the limit


def test_truncated_trailing_and_unknown_encodings() -> None:
    data = b'{"a": 1}\n' * 1000
    cases = [
        (gzip.compress(data)[:-1], "gzip", 400, "truncated"),
        (gzip.compress(data) + b"\x1f", "gzip", 400, "truncated"),  # a second member that never came
        (gzip.compress(data) + b"\x00\x00", "gzip", 400, "trailing"),
        (zlib.compress(data) + b"x", "deflate", 400, "trailing"),
        (zstandard.ZstdCompressor().compress(data)[:-1], "zstd", 400, "truncated"),
        (b"not gzip", "gzip", 400, "not valid gzip"),
        (data, "br", 415, "Content-Encoding"),
    ]
    for body, encoding, status, reason in cases:
        with pytest.raises(BodyError) as err:
            decompress(body, encoding, 10**7)
        assert err.value.status == status and reason in err.value.message, (encoding, err.value.message)
    assert decompress(b"", "gzip", 10) == b""  # no body at all: the decoder's caller reports it empty
