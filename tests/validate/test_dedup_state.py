"""Dedup and watermark state survive a restart: exported, written to a stream-state file, read back, resumed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from tests.validate.corpus import NOW_MS, TS, line
from tunewatch.ingest.readers import parse_ndjson_bytes
from tunewatch.pipeline.stream_state import StreamStateFile
from tunewatch.validate import EnterpriseDataValidator
from tunewatch.validate import dedup as dedup_module
from tunewatch.validate.dedup import DuplicateFilter
from tunewatch.validate.watermark import Watermark

MINUTE = 60_000
HORIZON = 10 * MINUTE


def _through_file(state: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """``state`` written to a real stream-state file and read back (what a restart does)."""
    file = StreamStateFile(tmp_path / "stream.state")
    file.save({"state": state})
    loaded = file.read()
    assert loaded is not None
    out: dict[str, Any] = loaded["state"]
    return out


def _filled_filter() -> DuplicateFilter:
    """Ids ``old-*`` at TS, ``mid-*`` 6 minutes later, ``new-*`` 12 minutes later (watermark there)."""
    f = DuplicateFilter(HORIZON)
    for prefix, offset in (("old", 0), ("mid", 6 * MINUTE), ("new", 12 * MINUTE)):
        ids = pl.Series([f"{prefix}-{i}" for i in range(300)])
        assert not f.duplicate_mask(ids).any()
        f.remember(ids, pl.Series(np.full(300, TS + offset, dtype=np.int64)))
    f.evict(TS + 12 * MINUTE)
    return f


def test_ids_inside_the_horizon_are_duplicates_after_a_round_trip(tmp_path: Path) -> None:
    state = _through_file(_filled_filter().state_dict(), tmp_path)
    assert sorted(set(s[:3] for s in state["ids"].to_list())) == ["mid", "new"]
    restored = DuplicateFilter(HORIZON)
    restored.load_state_dict(state)
    assert len(restored) == 600
    inside = pl.Series(["mid-0", "new-299", "mid-150"])
    beyond = pl.Series(["old-0", "old-299"])  # remembered once, but older than the horizon: not saved
    unseen = pl.Series(["new-300", "mid-", "MID-1", "new-1 ", "x"])  # near misses are never duplicates
    assert restored.duplicate_mask(inside).tolist() == [True, True, True]
    assert restored.duplicate_mask(beyond).tolist() == [False, False]
    assert restored.duplicate_mask(unseen).tolist() == [False] * 5


def test_the_restored_filter_goes_on_remembering_and_forgetting(tmp_path: Path) -> None:
    restored = DuplicateFilter(HORIZON)
    restored.load_state_dict(_through_file(_filled_filter().state_dict(), tmp_path))
    for prefix, offset in (("later", 17 * MINUTE), ("last", 30 * MINUTE)):
        fresh = pl.Series([f"{prefix}-{i}" for i in range(50)])
        assert not restored.duplicate_mask(fresh).any()
        restored.remember(fresh, pl.Series(np.full(50, TS + offset, dtype=np.int64)))
        restored.evict(TS + offset)
        if prefix == "later":
            assert restored.duplicate_mask(pl.Series(["new-1", "later-1"])).tolist() == [True, True]
    # 30 minutes on, everything restored is beyond the 10-minute horizon and forgotten (the later ids share a run
    # with the last ones: like any filter's, they are dropped at that run's next merge)
    probe = pl.Series(["mid-1", "new-1", "last-1"])
    assert restored.duplicate_mask(probe).tolist() == [False, False, True]
    assert len(restored) == 100


def test_a_shorter_horizon_on_restore_drops_what_it_no_longer_covers() -> None:
    restored = DuplicateFilter(3 * MINUTE)
    restored.load_state_dict(_filled_filter().state_dict())
    assert restored.duplicate_mask(pl.Series(["mid-1", "new-1"])).tolist() == [False, True]


def test_no_false_positive_after_restore_even_when_every_hash_collides(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every id hashes alike: the restored filter still tells ids apart by their strings."""
    monkeypatch.setattr(dedup_module, "_hash", lambda ids: np.zeros(len(ids), dtype=np.uint64))
    f = DuplicateFilter()
    first = pl.Series([f"id-{i}" for i in range(40)])
    f.remember(first, pl.Series(np.full(40, TS, dtype=np.int64)))
    restored = DuplicateFilter()
    restored.load_state_dict(f.state_dict())
    assert restored.duplicate_mask(pl.Series(["new-1", "id-7", "id-39", "id-40"])).tolist() == [
        False,
        True,
        True,
        False,
    ]


def test_another_layout_version_is_refused_with_the_component_and_versions() -> None:
    state = _filled_filter().state_dict()
    state["version"] = 2
    with pytest.raises(ValueError, match=r"DuplicateFilter state: layout version 2 .* reads version 1"):
        DuplicateFilter().load_state_dict(state)
    with pytest.raises(ValueError, match="Watermark state: the export is of component 'DuplicateFilter'"):
        Watermark().load_state_dict(_filled_filter().state_dict())


def test_the_watermark_judges_lateness_alike_after_a_restore(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    times = TS + np.cumsum(rng.integers(0, 4000, 600)) - rng.integers(0, 200_000, 600) * (rng.random(600) < 0.1)
    first, second = times[:300].astype(np.int64), times[300:].astype(np.int64)
    whole = Watermark()
    expected = np.concatenate([whole.late_mask(first), whole.late_mask(second)])
    before = Watermark()
    got_first = before.late_mask(first)
    after = Watermark()
    after.load_state_dict(_through_file(before.state_dict(), tmp_path))
    assert after.value == before.value
    assert np.array_equal(np.concatenate([got_first, after.late_mask(second)]), expected)
    assert expected.any()  # the stream does hold late events


def test_a_restored_validator_counts_a_resent_event_as_duplicate(tmp_path: Path) -> None:
    def validator() -> EnterpriseDataValidator:
        return EnterpriseDataValidator(clock=lambda: NOW_MS / 1000)

    events = b"\n".join(line(event_id=f"ev-{i}", ts=TS + i * 1000) for i in range(20))
    before = validator()
    assert before.validate(parse_ndjson_bytes(events)).accepted == 20
    after = validator()
    after.load_state_dict(_through_file(before.state_dict(), tmp_path))
    again = after.validate(parse_ndjson_bytes(events + b"\n" + line(event_id="ev-new", ts=TS + 20_000)))
    assert (again.accepted, again.duplicates, again.rejected_count) == (1, 20, 0)
    assert after.watermark.value == before.watermark.value + 1000
