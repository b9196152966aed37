"""Request bodies to event lines: JSON array, NDJSON or msgpack; gzip or zstd; bounded sizes.

JSON and NDJSON bodies become NDJSON *lines* (one non-blank line per event), so that many requests can be
joined into one chunk and parsed by the columnar reader in a single call (see :mod:`tunewatch.server.batcher`).
msgpack bodies are decoded to records (a msgpack map is not JSON: NaN, binary values) and run on their own.
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass
from typing import Literal

import msgpack
import msgspec
import zstandard

from tunewatch.ingest.batch import RawBatch

JSON_TYPES = frozenset({"application/json"})
NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines"})
MSGPACK_TYPES = frozenset({"application/msgpack", "application/x-msgpack", "application/vnd.msgpack"})
SUPPORTED = "application/json (array or object), application/x-ndjson, application/msgpack"
_LINES = msgspec.json.Encoder()  #: re-encodes decoded JSON records one per line (``encode_lines``)


class BodyError(Exception):
    """A body that cannot be used: HTTP status and a message naming the reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


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
    """One msgpack request's events as a raw batch."""

    batch: RawBatch
    count: int


Payload = LinesPayload | RecordsPayload


def decompress(body: bytes, encoding: str | None, max_bytes: int) -> bytes:
    """Undo ``Content-Encoding`` (identity, gzip, zstd) without producing more than ``max_bytes``."""
    enc = (encoding or "identity").strip().lower()
    if enc in ("identity", ""):
        return body
    if enc in ("gzip", "x-gzip", "deflate"):
        d = zlib.decompressobj(wbits=47 if enc != "deflate" else 15)
        try:
            out = d.decompress(body, max_bytes + 1)
        except zlib.error as exc:
            raise BodyError(400, f"body is not valid {enc} data ({exc})") from exc
        if len(out) > max_bytes:
            raise BodyError(413, f"decompressed body is larger than the limit of {max_bytes} bytes")
        if not d.eof:
            raise BodyError(400, f"body is truncated {enc} data")
        return out
    if enc == "zstd":
        try:
            with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(body)) as reader:
                out = reader.read(max_bytes + 1)
        except zstandard.ZstdError as exc:
            raise BodyError(400, f"body is not valid zstd data ({exc})") from exc
        if len(out) > max_bytes:
            raise BodyError(413, f"decompressed body is larger than the limit of {max_bytes} bytes")
        return out
    raise BodyError(415, f"unsupported Content-Encoding {encoding!r}: use gzip, zstd or none")


def decode_body(body: bytes, content_type: str | None) -> Payload:
    """Parse a (decompressed) body by its ``Content-Type``; without one, ``[`` means JSON array, else NDJSON."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if not body.strip():
        raise BodyError(400, f"empty body: send events as {SUPPORTED}")
    if media in MSGPACK_TYPES:
        return _msgpack(body)
    if media in NDJSON_TYPES:
        return _ndjson(body)
    if media in JSON_TYPES or (media in ("", "text/plain", "application/octet-stream") and body.lstrip()[:1] == b"["):
        return _json(body)
    if media in ("", "text/plain", "application/octet-stream"):
        return _ndjson(body)
    raise BodyError(415, f"unsupported Content-Type {content_type!r}: use {SUPPORTED}")


_NOT_UTF8 = "body is not valid UTF-8 JSON; send NDJSON to have bad lines rejected one by one"


def _is_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _json(body: bytes) -> LinesPayload:
    try:
        value = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError, ValueError) as exc:
        # our own check, on the error path only: the decoder's wording for bad UTF-8 changes between releases
        if not _is_utf8(body):
            raise BodyError(400, _NOT_UTF8) from exc
        raise BodyError(400, f"body is not valid JSON: {str(exc)[:120]}") from exc
    records = value if isinstance(value, list) else [value]
    return LinesPayload(_LINES.encode_lines(records), len(records), "index")


def _ndjson(body: bytes) -> LinesPayload:
    raw = body.split(b"\n")
    kept = [line for line in raw if line.strip()]
    positions = None
    if len(kept) != len(raw) - (raw[-1] == b""):
        positions = [i + 1 for i, line in enumerate(raw) if line.strip()]
    return LinesPayload(b"".join([line + b"\n" for line in kept]), len(kept), "line", positions)


def _msgpack(body: bytes) -> RecordsPayload:
    try:
        value = msgpack.unpackb(body, raw=False, strict_map_key=False)
    except (ValueError, TypeError, msgpack.UnpackException, RecursionError) as exc:
        raise BodyError(400, f"body is not valid msgpack: {(str(exc) or type(exc).__name__)[:120]}") from exc
    records = value if isinstance(value, list) else [value]
    batch = RawBatch.from_records(records, source="http")
    return RecordsPayload(batch, batch.received)
