"""The ingest WAL: a checkpoint's rotation and release keep every record after it, and records survive a reopen."""

from __future__ import annotations

from pathlib import Path

from tunewatch.store.wal import KIND_LINES, IngestWal


def test_release_after_a_rotation_keeps_the_records_the_checkpoint_does_not_cover(tmp_path: Path) -> None:
    wal = IngestWal(tmp_path / "w", fsync="write")
    for n in range(1, 4):
        wal.append(KIND_LINES, f"{n}\n".encode())
    wal.rotate()  # a checkpoint covering records up to 2 only: record 3 was written before it was taken
    wal.append(KIND_LINES, b"4\n")
    wal.release(2)
    assert [r.seq for r in wal.records(after=2)] == [3, 4]
    wal.release(3)
    assert [r.seq for r in wal.records(after=0)] == [4]
    wal.close()
    reopened = IngestWal(tmp_path / "w", fsync="always")
    assert reopened.last_seq == 4 and [r.payload for r in reopened.records(after=0)] == [b"4\n"]
