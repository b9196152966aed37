"""Value codec: msgpack (with NumPy arrays and datetimes) behind a 1-byte header, zstd above a size threshold.

Layout: ``header byte`` + body, where the header says how the body is stored (:data:`PLAIN` msgpack or
:data:`ZSTD` compressed msgpack). Anything else — a foreign value written by another program, truncated or
corrupt bytes — makes :meth:`Codec.decode` raise :class:`CodecError`; :meth:`Codec.try_decode` turns that into a
miss and one logged error, so a bad value in Redis never reaches the caller as an exception.

>>> import numpy as np
>>> codec = Codec(compress_threshold=64)
>>> value = {"plays": np.arange(100, dtype=np.int64), "window": 1_699_999_980_000}
>>> blob = codec.encode(value)
>>> blob[:1] == ZSTD and len(blob) < 800
True
>>> out = codec.decode(blob)
>>> bool((out["plays"] == value["plays"]).all()), out["window"]
(True, 1699999980000)
>>> codec.try_decode(b"not ours", key="k")
(False, None)
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from typing import Any, Final

import msgpack
import numpy as np
import zstandard

from tunewatch.errors import TunewatchError

log = logging.getLogger(__name__)

PLAIN: Final = b"\xa1"
ZSTD: Final = b"\xa2"

_EXT_NDARRAY: Final = 1
_EXT_DATETIME: Final = 2
_EXT_DATE: Final = 3
_EXT_NEGATIVE: Final = 4


class CodecError(TunewatchError):
    """A value cannot be encoded, or stored bytes are not a value this codec wrote.

    >>> try:
    ...     Codec().decode(b"not ours")
    ... except CodecError as exc:
    ...     isinstance(exc, TunewatchError)
    True
    """


class _Negative:
    """Marker stored by negative caching: "the computation found nothing"."""

    _instance: _Negative | None = None

    def __new__(cls) -> _Negative:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NEGATIVE"


NEGATIVE: Final = _Negative()


def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise TypeError(f"numpy array of dtype {obj.dtype} cannot be cached (object dtype)")
        arr = np.ascontiguousarray(obj)
        return msgpack.ExtType(_EXT_NDARRAY, msgpack.packb([arr.dtype.str, list(arr.shape), arr.tobytes()]))
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dt.datetime):
        return msgpack.ExtType(_EXT_DATETIME, obj.isoformat().encode())
    if isinstance(obj, dt.date):
        return msgpack.ExtType(_EXT_DATE, obj.isoformat().encode())
    if obj is NEGATIVE:
        return msgpack.ExtType(_EXT_NEGATIVE, b"")
    raise TypeError(f"type {type(obj).__name__} is not serialisable by the cache codec")


def _ext_hook(code: int, data: bytes) -> Any:
    if code == _EXT_NDARRAY:
        dtype, shape, raw = msgpack.unpackb(data)
        return np.frombuffer(raw, dtype=np.dtype(dtype)).reshape(shape).copy()
    if code == _EXT_DATETIME:
        return dt.datetime.fromisoformat(data.decode())
    if code == _EXT_DATE:
        return dt.date.fromisoformat(data.decode())
    if code == _EXT_NEGATIVE:
        return NEGATIVE
    raise ValueError(f"unknown msgpack extension type {code}")


class Codec:
    """Serialises cache values; thread-safe (zstd contexts are per thread).

    >>> codec = Codec(compression=False)
    >>> codec.decode(codec.encode({"track": "t1", "plays": [1, 2, 3]}))
    {'track': 't1', 'plays': [1, 2, 3]}
    """

    def __init__(
        self,
        *,
        compression: bool = True,
        compress_threshold: int = 1024,
        level: int = 3,
        max_value_bytes: int = 256 * 1024 * 1024,
    ) -> None:
        self.compression = compression
        self.compress_threshold = compress_threshold
        self.level = level
        self.max_value_bytes = max_value_bytes
        self._local = threading.local()

    def _compressor(self) -> zstandard.ZstdCompressor:
        comp = getattr(self._local, "comp", None)
        if comp is None:
            comp = self._local.comp = zstandard.ZstdCompressor(level=self.level)
        return comp

    def _decompressor(self) -> zstandard.ZstdDecompressor:
        dec = getattr(self._local, "dec", None)
        if dec is None:
            dec = self._local.dec = zstandard.ZstdDecompressor()
        return dec

    def encode(self, value: Any) -> bytes:
        """Bytes for ``value``; raises :class:`CodecError` naming the type that cannot be stored."""
        try:
            body = msgpack.packb(value, default=_default, use_bin_type=True, datetime=False)
        except (TypeError, ValueError, OverflowError) as exc:
            raise CodecError(f"cache value cannot be serialised: {exc}") from exc
        if self.compression and len(body) >= self.compress_threshold:
            return ZSTD + self._compressor().compress(body)
        return PLAIN + body

    def decode(self, data: bytes) -> Any:
        """The value stored in ``data``; raises :class:`CodecError` on foreign or corrupt bytes."""
        header, body = data[:1], memoryview(data)[1:]
        try:
            if header == ZSTD:
                size = zstandard.frame_content_size(body)
                if size < 0 or size > self.max_value_bytes:
                    raise CodecError(f"compressed value declares {size} bytes (limit {self.max_value_bytes})")
                body = memoryview(self._decompressor().decompress(body))
            elif header != PLAIN:
                raise CodecError(f"unknown header byte {header!r} (not written by this codec)")
            return msgpack.unpackb(body, raw=False, ext_hook=_ext_hook, strict_map_key=False, timestamp=0)
        except CodecError:
            raise
        except Exception as exc:  # msgpack/zstd/numpy raise many types on corrupt input
            raise CodecError(f"corrupt cache value: {type(exc).__name__}: {exc}") from exc

    def try_decode(self, data: bytes, *, key: str) -> tuple[bool, Any]:
        """``(True, value)``, or ``(False, None)`` with one logged error when ``data`` cannot be decoded."""
        try:
            return True, self.decode(data)
        except CodecError as exc:
            log.error("cache: value of key %r is unreadable, treated as a miss: %s", key, exc)
            return False, None
