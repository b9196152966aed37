"""The state container on disk: one file, written atomically, read back or ignored with a warning.

It holds a tree of plain values, NumPy arrays and Polars frames: in tunewatch, the pipeline snapshot
(:mod:`tunewatch.pipeline.snapshot`: detectors, stream state and alert rules' state of one moment), which serve mode
keeps in a file beside its database and the distributed workers in Redis. The stream part is what lets a restarted
service neither accept a re-sent event again nor lose or double-count the minute that was open.

File layout: a 44-byte header — the magic ``TWSTREAM``, the format version (uint32, big-endian) and the
BLAKE2b-256 digest of the rest — then one zstd frame holding length-prefixed records (uint64, big-endian): first
the msgpack of the state tree, then one record per array or frame the tree refers to. NumPy arrays are raw
little-endian buffers (numeric dtypes only: nothing is ever unpickled), Polars frames and series Arrow IPC
streams. Any frame stored under a key named ``personal`` (the processor's user-id hashes) is sealed with
AES-256-GCM when a data keyring is configured (``TUNEWATCH_DATA_KEY``), with the format and key id as associated
data; without one it is written as it is (pseudonymous hashes, never user ids).

Writes go to a temporary file in the same folder (mode 0600), which is fsynced, renamed over the old file, and
the folder fsynced: a crash leaves either the old file or the new one. A missing file is a fresh start; a
damaged, foreign or unreadable one is a fresh start with one logged warning, never an exception.
:class:`StreamStateCodec` is the same format without a file (bytes in, bytes out), for state kept elsewhere: the
distributed workers keep each partition's snapshot in Redis with it.
:meth:`StreamStateFile.save_in_background` encodes and writes on a worker thread, so that a large state (an
hour of event ids) does not hold up ingest; a newer state replaces one still waiting, and a write in progress
finishes before the interpreter exits.

>>> import tempfile, pathlib, numpy as np, polars as pl
>>> f = StreamStateFile(pathlib.Path(tempfile.mkdtemp()) / "stream.state")
>>> size = f.save({"ids": pl.Series(["e1", "e2"]), "ts": np.array([1, 2]), "watermark": 2})
>>> state = f.load()
>>> state["ids"].to_list(), state["ts"].tolist(), state["watermark"]
(['e1', 'e2'], [1, 2], 2)
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import secrets
import struct
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final, cast

import msgpack
import numpy as np
import polars as pl
import zstandard
from cryptography.exceptions import InvalidTag

from tunewatch.errors import TunewatchError
from tunewatch.security.keyring import Keyring, KeyringError

log = logging.getLogger(__name__)

MAGIC: Final = b"TWSTREAM"
FORMAT_VERSION: Final = 1
#: the key under which a frame holds personal data (sealed when a keyring is configured)
PERSONAL_KEY: Final = "personal"

_HEADER: Final = struct.Struct(">8sI32s")
_LENGTH: Final = struct.Struct(">Q")
_AAD: Final = b"tunewatch/stream-state/v1|"
_NONCE_BYTES: Final = 12
_ZSTD_LEVEL: Final = 1  # on uncompressed Arrow buffers: as small as Arrow's own zstd at a fifth of the time
_ARRAY, _FRAME, _SERIES, _SEALED = 1, 2, 3, 4  # msgpack extension codes of references to records
_NUMERIC: Final = "biuf"
_READ_CHUNK: Final = 1 << 24


class StreamStateError(TunewatchError):
    """A stream-state file cannot be used: damaged, foreign, of another format version, or sealed with a key
    this service does not have."""


@dataclass(frozen=True, slots=True)
class _Ref:
    """A reference, in the decoded tree, to the record holding an array or a frame."""

    code: int
    index: int
    dtype: str = ""
    shape: tuple[int, ...] = ()


class StreamStateCodec:
    """The stream-state format without a file: :meth:`encode` a state to bytes, :meth:`decode` it back (for a
    state kept elsewhere, e.g. in Redis). ``where`` names the source in error messages; ``keyring`` seals the
    personal frames (AES-256-GCM with its active key), None writes them as they are.

    >>> codec = StreamStateCodec("example")
    >>> codec.decode(codec.encode({"watermark": 7}))
    {'watermark': 7}
    """

    def __init__(self, where: str, *, keyring: Keyring | None = None) -> None:
        self._where = where
        self.keyring = keyring

    def __repr__(self) -> str:
        return f"StreamStateCodec({self.where!r}, sealed={self.keyring is not None})"

    @property
    def where(self) -> str:
        """The source named in error messages."""
        return self._where

    def encode(self, state: Mapping[str, Any]) -> bytes:
        """``state`` in the stream-state format (what :meth:`StreamStateFile.save` writes)."""
        out = io.BytesIO()
        self._encode_into(state, out)
        return out.getvalue()

    def _encode_into(self, state: Mapping[str, Any], out: IO[bytes]) -> int:
        """Write header and body to ``out`` (seekable); return the bytes written."""
        values: list[tuple[str, Any]] = []
        tree = msgpack.packb(self._prepare(state, "state", values), use_bin_type=True)
        start = out.tell()
        out.write(bytes(_HEADER.size))  # the digest is known at the end
        sink = _HashingWriter(out)
        with zstandard.ZstdCompressor(level=_ZSTD_LEVEL).stream_writer(cast(IO[bytes], sink), closefd=False) as z:
            _write_record(z, tree)
            for key, value in values:
                _write_record(z, self._record(key, value))
        end = out.tell()
        out.seek(start)
        out.write(_HEADER.pack(MAGIC, FORMAT_VERSION, sink.digest()))
        out.seek(end)
        return end - start

    def _prepare(self, value: Any, key: str, values: list[tuple[str, Any]]) -> Any:
        """``value`` for msgpack: arrays and frames become references to the records appended to ``values``."""
        if isinstance(value, Mapping):
            return {str(k): self._prepare(v, str(k), values) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._prepare(v, key, values) for v in value]
        if isinstance(value, np.ndarray):
            if value.dtype.kind not in _NUMERIC:
                raise TypeError(f"stream state: {key!r} is an array of dtype {value.dtype}, only numbers are stored")
            values.append((key, value))
            meta = [len(values) - 1, value.dtype.newbyteorder("<").str, list(value.shape)]
            return msgpack.ExtType(_ARRAY, msgpack.packb(meta))
        if isinstance(value, pl.DataFrame | pl.Series):
            values.append((key, value))
            sealed = isinstance(value, pl.DataFrame) and key == PERSONAL_KEY and self.keyring is not None
            code = _SEALED if sealed else _FRAME if isinstance(value, pl.DataFrame) else _SERIES
            return msgpack.ExtType(code, msgpack.packb([len(values) - 1]))
        if isinstance(value, np.generic):
            return value.item()
        if value is None or isinstance(value, bool | int | float | str | bytes):
            return value
        raise TypeError(f"stream state: {key!r} holds a {type(value).__name__}, which the file cannot store")

    def _record(self, key: str, value: Any) -> bytes:
        if isinstance(value, np.ndarray):
            return np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<")).tobytes()
        frame = value.to_frame() if isinstance(value, pl.Series) else value
        out = io.BytesIO()
        frame.write_ipc_stream(out, compression="uncompressed", compat_level=pl.CompatLevel.oldest())
        if key == PERSONAL_KEY and isinstance(value, pl.DataFrame) and self.keyring is not None:
            return self._seal(out.getvalue())
        return out.getvalue()

    def _seal(self, plain: bytes) -> bytes:
        assert self.keyring is not None
        kid = self.keyring.active
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self.keyring.aead(kid).encrypt(nonce, plain, _AAD + kid.encode())
        return msgpack.packb([kid, nonce + sealed], use_bin_type=True)

    # -------------------------------------------------------------------------------------------- read

    def decode(self, data: bytes) -> dict[str, Any]:
        """The state in ``data`` (encoded bytes); raises :class:`StreamStateError` when they are unusable."""
        where = self.where
        if len(data) < _HEADER.size or data[: len(MAGIC)] != MAGIC:
            raise StreamStateError(f"{where}: not a tunewatch stream-state file (no {MAGIC.decode()} header)")
        _, version, digest = _HEADER.unpack_from(data)
        if version != FORMAT_VERSION:
            raise StreamStateError(
                f"{where}: stream-state format version {version} is not supported (this version of tunewatch "
                f"reads version {FORMAT_VERSION})"
            )
        body = memoryview(data)[_HEADER.size :]
        if hashlib.blake2b(body, digest_size=32).digest() != digest:
            raise StreamStateError(f"{where}: damaged (the checksum of its {len(body)} bytes does not match)")
        try:
            with zstandard.ZstdDecompressor().stream_reader(body) as z:
                refs: list[_Ref] = []
                tree = msgpack.unpackb(
                    _read_record(z), raw=False, strict_map_key=False, ext_hook=lambda c, d: _ref(c, d, refs)
                )
                values = [self._value(ref, _read_record(z)) for ref in sorted(refs, key=lambda r: r.index)]
                if z.read(1):
                    raise ValueError("unexpected data after the last record")
            state = _resolve(tree, values)
        except StreamStateError:
            raise
        except Exception as exc:  # zstd, msgpack, Arrow and NumPy raise many types on malformed input
            raise StreamStateError(f"{where}: unreadable content ({type(exc).__name__}: {exc})") from exc
        if not isinstance(state, dict):
            raise StreamStateError(f"{where}: the content is a {type(state).__name__}, not a state mapping")
        return state

    def _value(self, ref: _Ref, data: bytes) -> Any:
        if ref.code == _ARRAY:
            dtype = np.dtype(ref.dtype)
            if dtype.kind not in _NUMERIC:
                raise StreamStateError(f"{self.where}: an array of dtype {dtype} (only numbers are stored)")
            return np.frombuffer(data, dtype=dtype).reshape(ref.shape).astype(dtype.newbyteorder("="))
        if ref.code == _SEALED:
            data = self._open(data)
        frame = pl.read_ipc_stream(io.BytesIO(data))
        return frame.to_series() if ref.code == _SERIES else frame

    def _open(self, data: bytes) -> bytes:
        kid, blob = msgpack.unpackb(data)
        if self.keyring is None:
            raise StreamStateError(f"{self.where}: its personal data is sealed with key id {kid!r} and no data key "
                                   "is configured (set TUNEWATCH_DATA_KEY or TUNEWATCH_DATA_KEY_FILE)")  # fmt: skip
        try:
            aead = self.keyring.aead(kid)
            plain: bytes = aead.decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], _AAD + str(kid).encode())
        except KeyringError as exc:
            raise StreamStateError(f"{self.where}: {exc}") from None
        except InvalidTag:
            raise StreamStateError(
                f"{self.where}: its personal data sealed with key id {kid!r} fails authentication "
                "(wrong key or altered)"
            ) from None
        return plain


class StreamStateFile(StreamStateCodec):
    """Saves and loads the stream state at ``path`` (see the module docstring for the layout and guarantees).

    ``keyring`` seals the personal frames (AES-256-GCM with its active key); None writes them as they are.
    """

    def __init__(self, path: str | os.PathLike[str], *, keyring: Keyring | None = None) -> None:
        super().__init__(str(path), keyring=keyring)
        self.path = Path(path)
        self._lock = threading.Lock()
        self._pending: Mapping[str, Any] | None = None
        self._pending_done: Callable[[], None] | None = None
        self._worker: threading.Thread | None = None
        self._idle = threading.Event()
        self._idle.set()
        #: bytes of the last file written (0: none yet)
        self.last_size = 0

    def __repr__(self) -> str:
        return f"StreamStateFile({str(self.path)!r}, sealed={self.keyring is not None})"

    @property
    def where(self) -> str:
        """The file's path (named in error messages)."""
        return str(self.path)

    # ------------------------------------------------------------------------------------------- write

    def save(self, state: Mapping[str, Any]) -> int:
        """Write ``state`` atomically (temp file, fsync, rename, fsync of the folder); return the bytes written.

        Raises ``OSError`` when the file cannot be written (the previous file, if any, is left intact) and
        ``TypeError`` naming the key of a value the file cannot hold. Waits for a background write first, so
        that an older state never lands after this one.
        """
        self.wait()
        return self._write(state)

    def save_in_background(self, state: Mapping[str, Any], on_saved: Callable[[], None] | None = None) -> None:
        """Write ``state`` on a worker thread; errors are logged. ``state`` must not change afterwards (the
        components' ``state_dict`` exports hold fresh arrays and immutable Arrow data). ``on_saved`` is called
        once it is durably written (not when a newer state replaced it first)."""
        with self._lock:
            self._pending = state
            self._pending_done = on_saved
            self._idle.clear()
            if self._worker is None:
                self._worker = threading.Thread(target=self._drain, name="stream-state-writer")
                self._worker.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until no background write is pending or running; return False on timeout."""
        return self._idle.wait(timeout)

    def _drain(self) -> None:
        while True:
            with self._lock:
                state, self._pending = self._pending, None
                done, self._pending_done = self._pending_done, None
                if state is None:
                    self._worker = None
                    self._idle.set()
                    return
            try:
                self._write(state)
                if done is not None:
                    done()
            except Exception as exc:  # the worker must survive and report whatever went wrong
                log.error("stream state not saved to %s: %s: %s", self.path, type(exc).__name__, exc)

    def _write(self, state: Mapping[str, Any]) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                size = self._encode_into(state, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(self.path.parent)
        self.last_size = size
        return size

    # -------------------------------------------------------------------------------------------- read

    def read(self) -> dict[str, Any] | None:
        """The saved state, None when there is no file; raises :class:`StreamStateError` when it is unusable."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StreamStateError(f"{self.path}: cannot read it ({exc.strerror or exc})") from None
        return self.decode(data)

    def load(self) -> dict[str, Any] | None:
        """The saved state; None for a fresh start — no file, or (with one warning logged) an unusable one.

        Temporary files left by a process killed while writing are removed first (one process owns the file).
        """
        self.remove_stale_temporaries()
        try:
            return self.read()
        except StreamStateError as exc:
            log.warning("stream state ignored, starting afresh: %s", exc)
            return None

    def remove_stale_temporaries(self) -> None:
        """Remove temporary files left by a process killed while writing (one process owns the file)."""
        for stale in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            try:
                stale.unlink()
                log.info("removed %s, left by an interrupted stream-state write", stale)
            except OSError as exc:
                log.warning("cannot remove %s, left by an interrupted stream-state write: %s", stale, exc)


class _HashingWriter:
    """A write-only file object that digests what it passes on (the zstd stream writer's sink)."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self._hash = hashlib.blake2b(digest_size=32)

    def write(self, data: bytes) -> int:
        self._hash.update(data)
        return self._out.write(data)

    def flush(self) -> None:
        self._out.flush()

    def digest(self) -> bytes:
        return self._hash.digest()


def _write_record(out: Any, data: bytes) -> None:
    out.write(_LENGTH.pack(len(data)))
    out.write(data)


def _read_record(z: Any) -> bytes:
    head = z.read(_LENGTH.size)
    if len(head) != _LENGTH.size:
        raise ValueError("a record is missing")
    (size,) = _LENGTH.unpack(head)
    parts, left = [], size
    while left:  # a stream reader returns at most one decompressed chunk per call; a damaged length stays cheap
        chunk = z.read(min(left, _READ_CHUNK))
        if not chunk:
            raise ValueError(f"a record is cut short ({size - left} of {size} bytes)")
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _ref(code: int, data: bytes, refs: list[_Ref]) -> _Ref:
    if code == _ARRAY:
        index, dtype, shape = msgpack.unpackb(data)
        ref = _Ref(code, int(index), str(dtype), tuple(int(n) for n in shape))
    elif code in (_FRAME, _SERIES, _SEALED):
        (index,) = msgpack.unpackb(data)
        ref = _Ref(code, int(index))
    else:
        raise ValueError(f"unknown value type {code} (written by another program?)")
    if ref.index != len(refs):
        raise ValueError(f"record {ref.index} referred to out of order")
    refs.append(ref)
    return ref


def _resolve(node: Any, values: list[Any]) -> Any:
    """The tree with every reference replaced by its decoded record."""
    if isinstance(node, _Ref):
        return values[node.index]
    if isinstance(node, dict):
        return {k: _resolve(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, values) for v in node]
    return node


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (where the platform allows a directory to be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


__all__ = ["FORMAT_VERSION", "MAGIC", "PERSONAL_KEY", "StreamStateCodec", "StreamStateError", "StreamStateFile"]
