"""Bounded, incremental ``Content-Encoding`` decoding (identity, gzip, deflate, zstd) of request bodies.

:class:`BoundedDecoder` is fed the body as it arrives and never produces more than ``max_bytes`` of output: the
limit is checked while decompressing, so a small compressed body cannot grow into gigabytes before it is
refused. Every gzip member and every zstd frame is decoded (``gzip -c a b`` and ``zstd -c a b`` bodies are
complete); a body that ends inside a member or frame is *truncated* (400) and bytes after the last one that do
not start another are *trailing garbage* (400).

zstd can expand a 4-byte block into 128 KiB, and its streaming decoder has no output bound, so input is fed in
pieces small enough that one piece cannot exceed the remaining budget by more than ``_ZSTD_SLACK`` bytes.

>>> import gzip
>>> d = BoundedDecoder("gzip", max_bytes=100)
>>> d.feed(gzip.compress(b"a\\n") + gzip.compress(b"b\\n")) + d.finish()
b'a\\nb\\n'
>>> BoundedDecoder("gzip", max_bytes=1).feed(gzip.compress(b"abc"))
Traceback (most recent call last):
...
tunewatch.ingest.compression.BodyError: decompressed body is larger than the limit of 1 bytes
"""

from __future__ import annotations

import zlib
from typing import Final, Protocol

import zstandard

GZIP_MAGIC: Final = b"\x1f\x8b"
ENCODINGS: Final = "gzip, deflate, zstd or none"
#: zstd's largest expansion: a 3-byte block header plus one byte (an RLE block) gives 128 KiB
_ZSTD_RATIO: Final = 128 * 1024 // 4
_ZSTD_MIN_PIECE: Final = 16
_ZSTD_SLACK: Final = _ZSTD_MIN_PIECE * _ZSTD_RATIO  # 512 KiB


class BodyError(Exception):
    """A body that cannot be used: the HTTP status to answer and a one-line reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Stream(Protocol):
    def feed(self, data: bytes) -> bytes: ...

    def finish(self) -> None: ...


def _too_large(limit: int) -> BodyError:
    return BodyError(413, f"decompressed body is larger than the limit of {limit} bytes")


class _Identity:
    def feed(self, data: bytes) -> bytes:
        return data

    def finish(self) -> None:
        return None


class _Zlib:
    """gzip (every member) or zlib-wrapped deflate; output bounded by ``budget()``."""

    def __init__(self, name: str, budget: _Budget) -> None:
        self.name = name
        self.gzip = name != "deflate"
        self.budget = budget
        self._d: zlib._Decompress | None = self._new()
        self._pending = b""  # bytes after a gzip member too short to tell whether another member starts
        self._started = False

    def _new(self) -> zlib._Decompress:
        return zlib.decompressobj(wbits=31 if self.gzip else 15)

    def feed(self, data: bytes) -> bytes:
        out: list[bytes] = []
        data = self._pending + data
        self._pending = b""
        while data:
            if self._d is None:  # between gzip members
                if not self.gzip or not GZIP_MAGIC.startswith(data[: len(GZIP_MAGIC)]):
                    raise BodyError(400, f"body has trailing bytes after the {self.name} data")
                if len(data) < len(GZIP_MAGIC):
                    self._pending = data
                    break
                self._d = self._new()
            self._started = True
            left = self.budget.left()
            try:
                piece = self._d.decompress(data, left + 1)
            except zlib.error as exc:
                raise BodyError(400, f"body is not valid {self.name} data ({exc})") from None
            self.budget.spend(len(piece))
            out.append(piece)
            if self.budget.left() < 0:  # stopped at the output bound (``left + 1``): over the limit
                raise _too_large(self.budget.limit)
            if self._d.eof:
                data = self._d.unused_data
                self._d = None
            else:
                data = b""
        return b"".join(out)

    def finish(self) -> None:
        if self._pending or (self._d is not None and self._started):
            raise BodyError(400, f"body is truncated {self.name} data")


class _Zstd:
    """Every zstd frame; input fed in pieces so that output cannot run far past ``budget()``."""

    def __init__(self, budget: _Budget) -> None:
        self.budget = budget
        self._dctx = zstandard.ZstdDecompressor()
        self._d = self._dctx.decompressobj()
        self._in_frame = False

    def feed(self, data: bytes) -> bytes:
        out: list[bytes] = []
        view = memoryview(data)
        pos = 0
        while pos < len(view):
            size = max(_ZSTD_MIN_PIECE, self.budget.left() // _ZSTD_RATIO)
            piece = view[pos : pos + size]
            pos += len(piece)
            while piece:
                self._in_frame = True
                try:
                    chunk = self._d.decompress(piece)
                except zstandard.ZstdError as exc:
                    raise BodyError(400, f"body is not valid zstd data ({exc})") from None
                self.budget.spend(len(chunk))
                if self.budget.left() < 0:
                    raise _too_large(self.budget.limit)
                out.append(chunk)
                if self._d.eof:  # a frame ended: the rest of the piece starts the next one
                    piece = memoryview(self._d.unused_data)
                    self._d = self._dctx.decompressobj()
                    self._in_frame = False
                else:
                    piece = memoryview(b"")
        return b"".join(out)

    def finish(self) -> None:
        if self._in_frame:
            raise BodyError(400, "body is truncated zstd data")


class _Budget:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def left(self) -> int:
        return self.limit - self.used

    def spend(self, n: int) -> None:
        self.used += n


class BoundedDecoder:
    """Decode a body of ``encoding`` (``Content-Encoding``) incrementally, at most ``max_bytes`` of output.

    :meth:`feed` returns the output of each piece of input; :meth:`finish` checks that the body ended at a
    member/frame boundary. Raises :class:`BodyError` (400 invalid/truncated/trailing bytes, 413 too large, 415
    unknown encoding).
    """

    def __init__(self, encoding: str | None, max_bytes: int) -> None:
        enc = (encoding or "identity").strip().lower()
        self.budget = _Budget(max_bytes)
        self.encoding = enc
        self._stream: _Stream
        if enc in ("identity", ""):
            self._stream = _Identity()
        elif enc in ("gzip", "x-gzip"):
            self._stream = _Zlib("gzip", self.budget)
        elif enc == "deflate":
            self._stream = _Zlib("deflate", self.budget)
        elif enc == "zstd":
            self._stream = _Zstd(self.budget)
        else:
            raise BodyError(415, f"unsupported Content-Encoding {encoding!r}: use {ENCODINGS}")
        self._identity = isinstance(self._stream, _Identity)

    @property
    def produced(self) -> int:
        """Bytes of output so far."""
        return self.budget.used

    def feed(self, data: bytes) -> bytes:
        """Decode the next piece of the body; raise 413 as soon as the output passes ``max_bytes``."""
        if self._identity:
            self.budget.spend(len(data))
            if self.budget.left() < 0:
                raise _too_large(self.budget.limit)
            return data
        return self._stream.feed(data)

    def finish(self) -> bytes:
        """End of the body: raise 400 when it stopped inside a gzip member or zstd frame."""
        self._stream.finish()
        return b""


def decompress(body: bytes, encoding: str | None, max_bytes: int) -> bytes:
    """Undo ``Content-Encoding`` of a whole body (see :class:`BoundedDecoder`)."""
    decoder = BoundedDecoder(encoding, max_bytes)
    out = decoder.feed(body)
    decoder.finish()
    return out
