"""The ingest write-ahead log: every accepted request's events on disk before the service answers 200.

Records are appended to segment files in a folder (``<database>.ingest-wal/``, mode ``0700``, files ``0600``),
each segment named by the sequence number of its first record. A record is ``length (u32) | seq (u64) |
kind (u8) | CRC-32 of the payload (u32) | payload``, big-endian; the payload is the step's NDJSON lines or a
msgpack body. One record per pipeline step: the batcher joins concurrent requests into one step, so one write
(and one ``fsync``) commits them all — group commit.

**fsync policy** (``wal_fsync``): ``always`` (default) fsyncs each record (while its step runs) before the
step's requests are answered, so an acknowledged event survives a power loss; ``write`` hands it to the
operating system only (it survives the process being killed, ``kill -9`` included, but not the machine losing
power) and fsyncs once a second; ``off`` disables the log.

A checkpoint of the stream state records the last sequence number it includes; :meth:`IngestWal.rotate` starts
a new segment at that moment and :meth:`IngestWal.release` deletes the segments the checkpoint covers once it is
durably written. At start, :meth:`IngestWal.records` yields what follows the checkpoint, for replay; a torn
record at the end (a crash in the middle of a write) ends the log there.

>>> import tempfile, pathlib
>>> wal = IngestWal(pathlib.Path(tempfile.mkdtemp()) / "w", fsync="always")
>>> wal.append(KIND_LINES, b'{"event_id": "e1"}\\n'), wal.append(KIND_LINES, b'{"event_id": "e2"}\\n')
(1, 2)
>>> [(r.seq, r.payload) for r in wal.records(after=1)]
[(2, b'{"event_id": "e2"}\\n')]
"""

from __future__ import annotations

import itertools
import logging
import os
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

log = logging.getLogger(__name__)

FsyncPolicy = Literal["always", "write", "off"]
KIND_LINES: Final = 1  #: NDJSON lines, one event per line
KIND_MSGPACK: Final = 2  #: a msgpack body (an array of maps, or one map)
_HEAD: Final = struct.Struct(">IQBI")
_SUFFIX: Final = ".log"
_WRITE_FSYNC_EVERY_S: Final = 1.0


@dataclass(frozen=True, slots=True)
class WalRecord:
    """One logged step: its sequence number, kind and payload."""

    seq: int
    kind: int
    payload: bytes


class IngestWal:
    """Append-only segments in ``folder`` with the given fsync policy (thread-safe)."""

    def __init__(self, folder: str | os.PathLike[str], *, fsync: FsyncPolicy = "always") -> None:
        self.folder = Path(folder)
        self.policy: FsyncPolicy = fsync
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        segments = self._segments()
        self.last_seq = 0
        if segments:
            for record in self._read(segments[-1][1], truncate_torn=True):
                self.last_seq = record.seq
            if self.last_seq == 0:
                self.last_seq = segments[-1][0] - 1
        self._fd = -1
        self._open(self.last_seq + 1)
        self._last_fsync = time.monotonic()
        self._synced = self.last_seq
        #: bytes appended since the last rotation (a checkpoint is due when this grows large)
        self.bytes_since_rotation = 0

    # ------------------------------------------------------------------------------------------ writing

    def _open(self, first_seq: int) -> None:
        existing = [path for seq, path in self._segments() if seq == first_seq]
        path = existing[0] if existing else self.folder / f"{first_seq:020d}{_SUFFIX}"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        if not existing:
            _fsync_dir(self.folder)

    def append(self, kind: int, payload: bytes, *, commit: bool = True) -> int:
        """Log one step; return its sequence number. With ``commit`` it is durable per the fsync policy when this
        returns; without, it is handed to the operating system and :meth:`commit` makes it durable (so that the
        fsync can run while the step does)."""
        with self._lock:
            seq = self.last_seq + 1
            head = _HEAD.pack(len(payload), seq, kind, zlib.crc32(payload))
            _write_all(self._fd, head, payload)  # header and payload in one call, without joining them
            self.last_seq = seq
            self.bytes_since_rotation += len(head) + len(payload)
        if commit:
            self.commit(seq)
        return seq

    def commit(self, seq: int) -> None:
        """Make records up to ``seq`` durable per the policy (one fsync covers every record written before it)."""
        with self._sync_lock:
            if self._synced >= seq:
                return
            with self._lock:
                fd, upto = self._fd, self.last_seq
            now = time.monotonic()
            if self.policy == "always" or now - self._last_fsync >= _WRITE_FSYNC_EVERY_S:
                os.fsync(fd)
                self._last_fsync = now
                self._synced = upto

    def rotate(self) -> int:
        """Start a new segment after the last record (call when a checkpoint is taken); return that last seq."""
        with self._sync_lock, self._lock:
            os.fsync(self._fd)
            self._synced = self.last_seq
            os.close(self._fd)
            self._open(self.last_seq + 1)
            self.bytes_since_rotation = 0
            return self.last_seq

    def release(self, upto_seq: int) -> None:
        """Delete the segments holding only records up to ``upto_seq`` (covered by a durable checkpoint)."""
        with self._lock:
            segments = self._segments()
            for (_, path), (next_first, _) in itertools.pairwise(segments):
                if next_first - 1 <= upto_seq:
                    path.unlink(missing_ok=True)

    def close(self) -> None:
        """fsync and close the current segment."""
        with self._sync_lock, self._lock:
            if self._fd >= 0:
                os.fsync(self._fd)
                os.close(self._fd)
                self._fd = -1

    # ------------------------------------------------------------------------------------------ reading

    def records(self, *, after: int) -> Iterator[WalRecord]:
        """Records with a sequence number above ``after``, oldest first (for replay at start)."""
        for _, path in self._segments():
            for record in self._read(path, truncate_torn=False):
                if record.seq > after:
                    yield record

    def _segments(self) -> list[tuple[int, Path]]:
        found = []
        for path in self.folder.glob(f"*{_SUFFIX}"):
            stem = path.name[: -len(_SUFFIX)]
            if stem.isdigit():
                found.append((int(stem), path))
        return sorted(found)

    @staticmethod
    def _read(path: Path, *, truncate_torn: bool) -> Iterator[WalRecord]:
        data = path.read_bytes()
        pos = 0
        while pos + _HEAD.size <= len(data):
            length, seq, kind, crc = _HEAD.unpack_from(data, pos)
            end = pos + _HEAD.size + length
            payload = data[pos + _HEAD.size : end]
            if end > len(data) or zlib.crc32(payload) != crc:
                break
            yield WalRecord(seq, kind, payload)
            pos = end
        if pos < len(data):
            log.warning("ingest WAL %s: torn record at byte %d (a crash mid-write): the log ends there", path, pos)
            if truncate_torn:
                os.truncate(path, pos)


def _write_all(fd: int, head: bytes, payload: bytes) -> None:
    """Write ``head`` then ``payload`` to ``fd`` (``writev``: no copy of a large payload), retrying short writes."""
    written = os.writev(fd, [head, payload])
    total = len(head) + len(payload)
    if written < total:
        rest = memoryview(head + payload)[written:]  # a short write (rare): finish it from where it stopped
        while rest:
            rest = rest[os.write(fd, rest) :]


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
