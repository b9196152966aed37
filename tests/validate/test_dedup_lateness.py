"""Exact, memory-bounded duplicate detection and allowed lateness."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from tests.validate.corpus import NOW_MS, TS, line
from tunewatch.ingest.readers import parse_ndjson_bytes
from tunewatch.validate import EnterpriseDataValidator
from tunewatch.validate import dedup as dedup_module
from tunewatch.validate.dedup import DuplicateFilter

MINUTE = 60_000


def _validator(**kwargs: int) -> EnterpriseDataValidator:
    return EnterpriseDataValidator(clock=lambda: NOW_MS / 1000, **kwargs)


def _payload(*events: tuple[str, int]) -> bytes:
    return b"\n".join(line(event_id=eid, ts=ts) for eid, ts in events)


def test_duplicates_in_and_across_batches_are_counted_not_rejected() -> None:
    v = _validator()
    first = v.validate(parse_ndjson_bytes(_payload(("a", TS), ("b", TS), ("a", TS + 1))))
    second = v.validate(parse_ndjson_bytes(_payload(("b", TS + 2), ("c", TS + 3))))
    assert (first.accepted, first.duplicates, first.rejected_count) == (2, 1, 0)
    assert (second.accepted, second.duplicates, second.rejected_count) == (1, 1, 0)
    assert second.valid.get_column("event_id").to_list() == ["c"]


def test_rejected_event_does_not_shadow_a_later_valid_copy() -> None:
    v = _validator()
    bad_then_good = line(event_id="x", market="zz") + b"\n" + line(event_id="x")
    result = v.validate(parse_ndjson_bytes(bad_then_good))
    assert (result.accepted, result.rejected_count, result.duplicates) == (1, 1, 0)


def test_hash_collisions_never_make_a_duplicate(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every id hashes alike here: only the exact string comparison separates them."""
    monkeypatch.setattr(dedup_module, "_hash", lambda ids: np.zeros(len(ids), dtype=np.uint64))
    f = DuplicateFilter()
    first = pl.Series([f"id-{i}" for i in range(50)])
    assert not f.duplicate_mask(first).any()
    f.remember(first, pl.Series(np.full(50, TS)))
    mixed = pl.Series(["new-1", "id-7", "new-2", "new-1"])
    assert f.duplicate_mask(mixed).tolist() == [False, True, False, True]


def test_many_batches_merge_runs_and_stay_exact() -> None:
    f = DuplicateFilter(horizon_ms=10 * MINUTE)
    for b in range(60):
        ids = pl.Series([f"b{b}-{i}" for i in range(20)])
        assert not f.duplicate_mask(ids).any()
        f.remember(ids, pl.Series(np.full(20, TS + b * 1000)))
        f.evict(TS + b * 1000)
    assert f.duplicate_mask(pl.Series(["b0-3", "b59-19", "zzz"])).tolist() == [True, True, False]


def test_memory_is_bounded_by_the_horizon() -> None:
    f = DuplicateFilter(horizon_ms=5 * MINUTE)
    for minute in range(120):
        ids = pl.Series([f"m{minute}-{i}" for i in range(100)])
        f.remember(ids, pl.Series(np.full(100, TS + minute * MINUTE)))
        f.evict(TS + minute * MINUTE)
        assert len(f) <= 100 * (5 + 1 + 25)  # the horizon, plus batches awaiting a merge
    assert not f.duplicate_mask(pl.Series(["m0-1"])).any()  # long forgotten


def test_out_of_order_within_lateness_is_accepted_later_is_late() -> None:
    v = _validator(allowed_lateness_ms=2 * MINUTE)
    events = [("e1", TS), ("e2", TS + MINUTE), ("e3", TS + 2 * MINUTE), ("e4", TS + 3 * MINUTE)]
    v.validate(parse_ndjson_bytes(_payload(*events)))
    assert v.watermark.value is not None
    result = v.validate(
        parse_ndjson_bytes(_payload(("in-time", TS + 90_000), ("late", TS - 5 * MINUTE), ("fresh", TS + 4 * MINUTE)))
    )
    assert result.valid.get_column("event_id").to_list() == ["in-time", "fresh"]
    assert result.rejected.get_column("reasons").to_list() == [["ts: late"]]
    assert result.rejected.get_column("event_id").to_list() == ["late"]
    assert result.rejected.get_column("line_no").to_list() == [2]
    assert result.reason_counts == {"ts: late": 1}
    assert b'"late"' in result.rejected.get_column("raw").to_list()[0]


def test_a_lone_outlier_does_not_drag_the_watermark() -> None:
    v = _validator()
    far = NOW_MS + 2 * MINUTE  # within the future tolerance, far ahead of the stream
    v.validate(parse_ndjson_bytes(_payload(("a", TS), ("b", TS + 1), ("c", TS + 2), ("jump", far), ("d", TS + 3))))
    result = v.validate(parse_ndjson_bytes(_payload(("e", TS + 4))))
    assert result.accepted == 1
    assert v.watermark.value is not None and v.watermark.value < far
