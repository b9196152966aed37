"""Encoding of one stream entry: a slice of a :class:`RawBatch` as msgpack, zstd-compressed above a size.

The msgpack envelope holds the source name, the event columns as one Arrow IPC buffer (all text, ``RAW_SCHEMA``;
written and read by Polars without a Python loop per event) and the undecodable lines with their reasons, so that
a worker sees exactly what a local reader would have produced. A 1-byte header says whether the envelope is
compressed.

>>> import polars as pl
>>> from tunewatch.ingest.batch import conform
>>> batch = RawBatch(frame=conform(pl.DataFrame({"event_id": ["a", "b"], "market": ["BR", "SE"]})), source="f")
>>> fields = encode_entry(batch)
>>> int(fields["n"])
2
>>> decode_entry(fields).frame["market"].to_list()
['BR', 'SE']
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any, Final

import msgpack
import polars as pl
import zstandard

from tunewatch.errors import InputError
from tunewatch.ingest.batch import RawBatch, UndecodableLine, conform

PLAIN: Final = b"\x01"
ZSTD: Final = b"\x02"
VERSION: Final = 1
DEFAULT_COMPRESS_THRESHOLD = 8 * 1024
MAX_ENTRY_BYTES = 256 * 1024 * 1024


def encode_entry(batch: RawBatch, compress_threshold: int = DEFAULT_COMPRESS_THRESHOLD) -> dict[str, bytes]:
    """Stream-entry fields for ``batch``: ``d`` (payload) and ``n`` (events received, as text)."""
    buf = io.BytesIO()
    batch.frame.write_ipc(buf, compression="uncompressed")
    bad = [[u.line_no, u.raw, u.reason, u.detail] for u in batch.undecodable]
    body: bytes = msgpack.packb({"v": VERSION, "src": batch.source, "ipc": buf.getvalue(), "bad": bad})
    if len(body) >= compress_threshold:
        payload = ZSTD + zstandard.ZstdCompressor(level=3).compress(body)
    else:
        payload = PLAIN + body
    return {"d": payload, "n": str(batch.received).encode()}


def decode_entry(fields: Mapping[bytes, bytes] | Mapping[str, bytes], entry_id: str = "?") -> RawBatch:
    """Inverse of :func:`encode_entry`; raises :class:`InputError` naming the entry for a payload it cannot use."""
    raw: Any = fields.get(b"d", fields.get("d"))  # type: ignore[call-overload]
    if not isinstance(raw, bytes) or not raw:
        raise InputError(f"stream entry {entry_id}: field 'd' is missing or empty")
    header, data = raw[:1], raw[1:]
    try:
        if header == ZSTD:
            data = zstandard.ZstdDecompressor().decompress(data, max_output_size=MAX_ENTRY_BYTES)
        elif header != PLAIN:
            raise InputError(f"stream entry {entry_id}: field 'd' has unknown header {header!r}")
        envelope = msgpack.unpackb(data, raw=False)
        if not isinstance(envelope, dict) or envelope.get("v") != VERSION:
            raise InputError(f"stream entry {entry_id}: unsupported payload version")
        frame = pl.read_ipc(io.BytesIO(envelope["ipc"]))
        bad = [UndecodableLine(int(n), bytes(r), str(why), str(d)) for n, r, why, d in envelope["bad"]]
    except InputError:
        raise
    except (zstandard.ZstdError, ValueError, KeyError, TypeError, pl.exceptions.PolarsError) as exc:
        raise InputError(f"stream entry {entry_id}: payload is not a tunewatch batch ({type(exc).__name__})") from exc
    return RawBatch(frame=conform(frame), source=str(envelope.get("src", "")), undecodable=bad)
