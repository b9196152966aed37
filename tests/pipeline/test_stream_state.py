"""A restart resumes the stream from the pipeline snapshot: no duplicate accepted again, the open minute neither lost
nor counted twice; serve's former stream-state file is adopted once."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tests.conftest import BASE_MS
from tunewatch.pipeline.core import Pipeline
from tunewatch.pipeline.snapshot import SnapshotFile, resume
from tunewatch.pipeline.stream_state import MAGIC, StreamStateError, StreamStateFile
from tunewatch.process.processor import KEY_COLUMNS
from tunewatch.schema import PERSONAL_FIELDS
from tunewatch.security.keyring import Keyring
from tunewatch.simulate import SimulationConfig, Simulator

BATCH = 700
PERSONAL = (*PERSONAL_FIELDS, "session_id", "user_agent")


def _clock() -> float:
    return BASE_MS / 1000 + 3 * 3600


@pytest.fixture(scope="module")
def stream() -> pl.DataFrame:
    """20 simulated minutes in arrival order, with the simulator's dirt, repeats and late events."""
    sim = Simulator(SimulationConfig(start=BASE_MS, minutes=20, events_per_minute=600, seed=3))
    return pl.concat(list(sim.blocks(1)))


def _batches(stream: pl.DataFrame) -> tuple[list[pl.DataFrame], list[pl.DataFrame], pl.DataFrame]:
    """First half, second half with a re-send of earlier events slipped in, and the re-sent events."""
    batches = [stream.slice(i, BATCH) for i in range(0, stream.height, BATCH)]
    half = len(batches) // 2
    resend = stream.slice(half * BATCH - 2 * BATCH, 400)  # events sent just before the checkpoint
    rest = batches[half:]
    return batches[:half], [*rest[:3], resend, *rest[3:]], resend


def _feed(pipeline: Pipeline, batches: list[pl.DataFrame], out: list[pl.DataFrame]) -> list[Any]:
    outcomes = [pipeline.ingest(b) for b in batches]
    out += [o.processed.metrics for o in outcomes if o.processed.windows]
    return outcomes


def _frame(parts: list[pl.DataFrame]) -> pl.DataFrame:
    return pl.concat([p for p in parts if p.height]).sort(list(KEY_COLUMNS), nulls_last=True)


def _state_file(tmp_path: Path, keyring: Keyring | None = None) -> SnapshotFile:
    return SnapshotFile.beside(tmp_path / "tunewatch.db", keyring=keyring)


def _save(pipeline: Pipeline, file: SnapshotFile, *, background: bool = False) -> None:
    file.save(pipeline, {"wal_seq": pipeline.wal_seq}, background=background)


def _resumed(file: SnapshotFile) -> tuple[Pipeline, bool]:
    """A pipeline resumed from ``file`` as a restarted service's, and whether it was (else a fresh start)."""
    pipeline, snapshot = resume(lambda: Pipeline(clock=_clock), file)
    return pipeline, snapshot is not None


@pytest.mark.parametrize("saved", ["snapshot", "former-stream-state-file"])
def test_a_restarted_pipeline_matches_an_uninterrupted_run(stream: pl.DataFrame, tmp_path: Path, saved: str) -> None:
    """``snapshot``: detectors, stream and alert state come back; ``former-stream-state-file``: the stream state
    serve wrote before the snapshot existed is adopted (the detectors start afresh: the metrics do not depend on
    them), and deleted once the first snapshot is written."""
    first_half, second_half, resend = _batches(stream)

    reference, expected = Pipeline(clock=_clock), list[pl.DataFrame]()
    _feed(reference, first_half + second_half, expected)
    expected.append(reference.finish().processed.metrics)

    file = _state_file(tmp_path)
    before, got = Pipeline(clock=_clock), list[pl.DataFrame]()
    accepted_before = {
        i for o in _feed(before, first_half, got) for i in o.validation.valid.get_column("event_id").to_list()
    }
    if saved == "snapshot":
        _save(before, file)
    else:
        assert file.legacy is not None and file.legacy == tmp_path / "tunewatch.stream-state"
        StreamStateFile(file.legacy).save(before.stream_state_dict())  # what serve wrote until now
    assert before.processor.buffered_events > 0  # a minute really was open at the checkpoint

    after, restored = _resumed(file)
    assert restored
    assert (after.detection.series_count > 0) is (saved == "snapshot")
    if saved != "snapshot":
        _save(after, file)  # the first snapshot replaces the adopted file
        assert file.path.exists() and not file.legacy.exists()
        after, restored = _resumed(file)
        assert restored
    outcomes = _feed(after, second_half, got)
    got.append(after.finish().processed.metrics)

    # the re-sent events that had been accepted are duplicates now; none is accepted twice
    resent = outcomes[3].validation
    was_accepted = resend.get_column("event_id").is_in(list(accepted_before)).sum()
    assert was_accepted > 300
    assert resent.duplicates == was_accepted and resent.accepted == 0
    # accounting balances in each process and over both
    total = stream.height + resend.height
    assert before.counters.balanced and after.counters.balanced
    assert before.counters.received + after.counters.received == total == reference.counters.received
    for name in ("accepted", "rejected", "duplicates"):
        assert getattr(before.counters, name) + getattr(after.counters, name) == getattr(reference.counters, name)
    # the per-minute metrics of every window and dimension equal the uninterrupted run's
    assert_frame_equal(_frame(got), _frame(expected))


def test_without_the_stream_state_a_resent_event_is_accepted_again(stream: pl.DataFrame) -> None:
    """The failure this module prevents: a pipeline restored from the detectors alone."""
    first_half, _, resend = _batches(stream)
    before = Pipeline(clock=_clock)
    _feed(before, first_half, [])
    after = Pipeline(clock=_clock)
    assert after.detection.load_state_dict(before.detection.state_dict()) > 0
    assert after.ingest(resend).validation.accepted > 300  # the restored pipeline above accepts none of them


def test_the_file_holds_no_personal_field(stream: pl.DataFrame, tmp_path: Path) -> None:
    first_half, _, _ = _batches(stream)
    pipeline, file = Pipeline(clock=_clock), _state_file(tmp_path)
    _feed(pipeline, first_half, [])
    _save(pipeline, file)
    assert os.stat(file.path).st_mode & 0o777 == 0o600
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary file was renamed
    saved = file.file.read()
    assert saved is not None
    personal_values = set(stream.select(pl.col(PERSONAL).cast(pl.String)).unpivot().drop_nulls()["value"])
    strings: set[str] = set()
    for frame in _frames(saved):
        assert not set(frame.columns) & set(PERSONAL)
        for name, dtype in frame.schema.items():
            if dtype == pl.String:
                strings |= set(frame.get_column(name).drop_nulls())
    assert strings and not strings & personal_values


def test_personal_hashes_are_sealed_with_the_data_key(stream: pl.DataFrame, tmp_path: Path) -> None:
    first_half, _, _ = _batches(stream)
    keyring = Keyring.generate("k1")
    pipeline = Pipeline(clock=_clock)
    _feed(pipeline, first_half, [])
    _save(pipeline, _state_file(tmp_path, keyring))
    hashes = pipeline.stream_state_dict()["processor"]["personal"].get_column("user_hash")
    assert hashes.len() > 0
    with pytest.raises(StreamStateError, match="sealed with key id 'k1' and no data key is configured"):
        _state_file(tmp_path).file.read()
    with pytest.raises(StreamStateError, match="fails authentication"):
        _state_file(tmp_path, Keyring.generate("k1")).file.read()
    resumed, restored = _resumed(_state_file(tmp_path, keyring))
    assert restored
    assert resumed.stream_state_dict()["processor"]["personal"].get_column("user_hash").equals(hashes)


def test_a_write_cut_short_leaves_the_previous_file_and_no_debris(stream: pl.DataFrame, tmp_path: Path) -> None:
    first_half, _, _ = _batches(stream)
    pipeline, file = Pipeline(clock=_clock), _state_file(tmp_path)
    _feed(pipeline, first_half[:3], [])
    _save(pipeline, file)
    saved = file.path.read_bytes()
    debris = tmp_path / f".{file.path.name}.4242.0badf00d.tmp"  # what a process killed mid-write leaves
    debris.write_bytes(saved[:1000])
    _, restored = _resumed(file)
    assert restored and not debris.exists()
    assert file.path.read_bytes() == saved


def test_a_background_save_is_complete_after_wait(stream: pl.DataFrame, tmp_path: Path) -> None:
    first_half, _, _ = _batches(stream)
    pipeline, file = Pipeline(clock=_clock), _state_file(tmp_path)
    _feed(pipeline, first_half[:4], [])
    _save(pipeline, file, background=True)
    _feed(pipeline, first_half[4:], [])
    _save(pipeline, file, background=True)
    assert file.wait(timeout=60)
    resumed, _ = _resumed(file)
    assert len(resumed.validator.dedup) == len(pipeline.validator.dedup)  # the newer of the two states
    assert resumed.validator.watermark.value == pipeline.validator.watermark.value


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda data: data[: len(data) // 2], "damaged"),
        (lambda data: data[:-10] + bytes(10), "damaged"),
        (lambda data: b"PAR1" + data[4:], "not a tunewatch stream-state file"),
        (lambda data: b"", "not a tunewatch stream-state file"),
        (lambda data: MAGIC + (7).to_bytes(4, "big") + data[12:], "format version 7 is not supported"),
    ],
    ids=["truncated", "zeroed-tail", "foreign", "empty", "other-format"],
)
def test_a_damaged_file_gives_a_fresh_start_with_a_warning(
    stream: pl.DataFrame, tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: Any, message: str
) -> None:
    first_half, _, _ = _batches(stream)
    pipeline, file = Pipeline(clock=_clock), _state_file(tmp_path)
    _feed(pipeline, first_half[:3], [])
    _save(pipeline, file)
    file.path.write_bytes(damage(file.path.read_bytes()))
    with caplog.at_level(logging.WARNING, logger="tunewatch.pipeline"):
        fresh, restored = _resumed(file)
    assert not restored
    assert len(fresh.validator.dedup) == 0 and fresh.validator.watermark.value is None
    assert fresh.processor.buffered_events == 0
    assert any(message in r.getMessage() and "starting afresh" in r.getMessage() for r in caplog.records)
    assert fresh.ingest(first_half[0]).validation.accepted > 0  # and it simply works on


@pytest.mark.parametrize(
    ("part", "expected"),
    [
        ((), r"Pipeline stream state: component 'Pipeline' layout version 9 .* reads Pipeline version 1"),
        (("validator", "dedup"), r"DuplicateFilter state: layout version 9 .* reads version 1"),
        (("validator", "watermark"), r"Watermark state: layout version 9 .* reads version 1"),
        (("processor",), r"MusicDataProcessor state: layout version 9 .* reads version 1"),
    ],
    ids=["pipeline", "dedup", "watermark", "processor"],
)
def test_another_layout_version_is_refused_by_name(
    stream: pl.DataFrame, tmp_path: Path, caplog: pytest.LogCaptureFixture, part: tuple[str, ...], expected: str
) -> None:
    first_half, _, _ = _batches(stream)
    pipeline = Pipeline(clock=_clock)
    _feed(pipeline, first_half[:3], [])
    state = pipeline.stream_state_dict()
    node = state
    for key in part:
        node = node[key]
    node["version"] = 9
    with pytest.raises(ValueError, match=expected):
        Pipeline(clock=_clock).load_stream_state_dict(state)
    file = _state_file(tmp_path)
    assert file.legacy is not None
    StreamStateFile(file.legacy).save(state)  # a former stream-state file of another layout
    with caplog.at_level(logging.WARNING, logger="tunewatch.pipeline"):
        fresh, restored = _resumed(file)
    assert not restored and len(fresh.validator.dedup) == 0
    assert any("starting afresh" in r.getMessage() and "version 9" in r.getMessage() for r in caplog.records)


def test_a_processor_state_that_does_not_fit_leaves_the_whole_stream_fresh(stream: pl.DataFrame) -> None:
    """All or nothing: the validator's part is not kept when the processor's is refused."""
    first_half, _, _ = _batches(stream)
    pipeline = Pipeline(clock=_clock)
    _feed(pipeline, first_half[:3], [])
    state = pipeline.stream_state_dict()
    state["processor"]["buffer"] = state["processor"]["buffer"].drop("plays")
    fresh = Pipeline(clock=_clock)
    with pytest.raises(ValueError, match="MusicDataProcessor state: buffered columns"):
        fresh.load_stream_state_dict(state)
    assert len(fresh.validator.dedup) == 0 and fresh.validator.watermark.value is None


def _frames(node: Any) -> Iterator[pl.DataFrame]:
    """Every frame and series (as a frame) in a state tree."""
    if isinstance(node, dict):
        for value in node.values():
            yield from _frames(value)
    elif isinstance(node, list):
        for value in node:
            yield from _frames(value)
    elif isinstance(node, pl.DataFrame):
        yield node
    elif isinstance(node, pl.Series):
        yield node.to_frame()
