"""The ingest WAL: records numbered in advance are written in order (a failed one leaves a gap), large payloads
round-trip, and a checkpoint's rotation and release keep every record after it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tunewatch.store.wal import KIND_LINES, KIND_MSGPACK, IngestWal


def test_numbered_records_round_trip_with_a_gap_and_never_go_back(tmp_path: Path) -> None:
    wal = IngestWal(tmp_path / "w", fsync="always")
    big = os.urandom(3 << 20)  # larger than one write may take
    assert wal.append(KIND_LINES, b"a\n", commit=False, seq=1) == 1
    wal.commit(1)
    assert wal.append(KIND_MSGPACK, big, seq=3) == 3  # record 2 failed to be written: a gap
    with pytest.raises(ValueError, match="record 3 written after record 3"):
        wal.append(KIND_LINES, b"b\n", seq=3)
    assert wal.append(KIND_LINES, b"c\n") == 4
    wal.close()
    reopened = IngestWal(tmp_path / "w", fsync="always")
    assert reopened.last_seq == 4
    assert [(r.seq, r.kind, r.payload) for r in reopened.records(after=0)] == [
        (1, KIND_LINES, b"a\n"), (3, KIND_MSGPACK, big), (4, KIND_LINES, b"c\n"),
    ]  # fmt: skip


def test_release_after_a_rotation_keeps_the_records_the_checkpoint_does_not_cover(tmp_path: Path) -> None:
    wal = IngestWal(tmp_path / "w", fsync="write")
    for n in range(1, 4):
        wal.append(KIND_LINES, f"{n}\n".encode())
    wal.rotate()  # a checkpoint covering records up to 2 only: record 3 was numbered before it was taken
    wal.append(KIND_LINES, b"4\n")
    wal.release(2)
    assert [r.seq for r in wal.records(after=2)] == [3, 4]
    wal.release(3)
    assert [r.seq for r in wal.records(after=0)] == [4]
