"""Re-ingest from the quarantine: validation and duplicate detection again, entries settled by the outcome."""

from __future__ import annotations

import io
from pathlib import Path

import msgspec
import polars as pl

from tests.quarantine.conftest import ingest, line
from tunewatch.alert.rules import load_rules
from tunewatch.pipeline.core import Pipeline
from tunewatch.quarantine.store import QuarantineStore
from tunewatch.validate import EnterpriseDataValidator
from tunewatch.validate.validator import REJECTED_SCHEMA


def _fix_market(export: Path, fixed: Path) -> None:
    """What a user does in an editor: correct the country code inside the exported raw lines."""
    fixed.write_bytes(export.read_bytes().replace(b'\\"market\\":\\"XX\\"', b'\\"market\\":\\"BR\\"'))


def test_fixed_export_is_accepted_then_counted_as_duplicate(store: QuarantineStore, tmp_path: Path) -> None:
    validator = EnterpriseDataValidator()
    ingest(store, [line(1), line(2, market="XX"), line(3, tier="gold")], validator)
    export, fixed = tmp_path / "export.ndjson", tmp_path / "fixed.ndjson"
    assert store.export(export, reason="market: unknown_country") == 1
    _fix_market(export, fixed)

    accepted = io.BytesIO()
    first = store.replay_file(fixed, validator, accepted_out=accepted)
    assert (first.received, first.accepted, first.rejected, first.duplicates) == (1, 1, 0, 0)
    assert first.replayed_ids == [1] and first.balanced
    assert msgspec.json.decode(accepted.getvalue())["market"] == "BR"
    entry = store.get(1)
    assert entry is not None and entry.state == "replayed" and entry.outcome == "accepted" and entry.attempts == 1
    assert entry.raw == line(2, market="XX")  # the quarantine keeps what was received
    assert [e.event_id for e in store.list()] == ["e3"]

    second = store.replay_file(fixed, validator)
    assert (second.received, second.accepted, second.rejected, second.duplicates) == (1, 0, 0, 1)
    assert second.replayed_ids == [] and store.count(state="pending") == 1 and store.count() == 2


def test_raw_export_edited_links_by_event_id(store: QuarantineStore, tmp_path: Path) -> None:
    validator = EnterpriseDataValidator()
    ingest(store, [line(1, market="XX"), line(2, market="XX")], validator)
    export = tmp_path / "raw.ndjson"
    store.export(export, "raw")
    export.write_bytes(export.read_bytes().replace(b'"market":"XX"', b'"market":"SE"', 1))
    report = store.replay_file(export, validator, accepted_out=io.BytesIO())
    assert (report.accepted, report.rejected) == (1, 1)
    assert report.replayed_ids == [1] and report.rejected_ids == [2] and report.new_ids == []
    still = store.get(2)
    assert still is not None and still.state == "pending" and still.attempts == 1


def test_replay_in_place_updates_reasons_of_events_rejected_again(store: QuarantineStore) -> None:
    stale = pl.DataFrame(
        {"source": ["old.ndjson"], "line_no": [7], "event_id": ["e2"], "reasons": [["market: legacy_code"]],
         "raw": [line(2, market="XX")]},
        schema=REJECTED_SCHEMA,
    )  # fmt: skip
    store.add(stale)
    report = store.replay(EnterpriseDataValidator(), now=123.0)
    assert (report.received, report.rejected) == (1, 1) and report.rejected_ids == [1]
    entry = store.get(1)
    assert entry is not None
    assert entry.reasons == ("market: unknown_country",) and entry.state == "pending"
    assert entry.attempts == 1 and entry.last_attempt_at == 123.0
    assert entry.source == "old.ndjson" and entry.line_no == 7  # where it came from is kept


def test_replay_filters_and_dry_run(store: QuarantineStore) -> None:
    frame = pl.DataFrame(
        {"source": ["s"] * 3, "line_no": [1, 2, 3], "event_id": ["e1", "e2", "e3"],
         "reasons": [["x: stale"], ["y: stale"], ["x: stale"]], "raw": [line(1), line(2), line(3)]},
        schema=REJECTED_SCHEMA,
    )  # fmt: skip
    store.add(frame)
    check = store.replay(EnterpriseDataValidator(), reason="x", dry_run=True)
    assert (check.received, check.accepted) == (2, 2) and check.replayed_ids == []
    assert store.count(state="pending") == 3
    done = store.replay(EnterpriseDataValidator(), ids=[2])
    assert done.replayed_ids == [2]
    assert [e.id for e in store.list()] == [1, 3]


def test_duplicates_within_a_replay_settle_both_entries(store: QuarantineStore) -> None:
    twice = [line(5), line(5)]
    frame = pl.DataFrame(
        {"source": ["s", "s"], "line_no": [1, 2], "event_id": ["e5", "e5"], "reasons": [["x: y"], ["x: y"]],
         "raw": twice},
        schema=REJECTED_SCHEMA,
    )  # fmt: skip
    store.add(frame)
    report = store.replay(EnterpriseDataValidator())
    assert (report.accepted, report.duplicates) == (1, 1)
    assert sorted((e.id, e.outcome) for e in store.list(state="replayed")) == [(1, "accepted"), (2, "duplicate")]


def test_lines_that_cannot_be_replayed_are_skipped(store: QuarantineStore) -> None:
    frame = pl.DataFrame(
        {"source": ["a.csv", "big.ndjson"], "line_no": [2, 9], "event_id": [None, None],
         "reasons": [["line: wrong_field_count"], ["line: too_long"]], "raw": [b"e1,2026-01-01,play", b""]},
        schema=REJECTED_SCHEMA,
    )  # fmt: skip
    store.add(frame)
    report = store.replay(EnterpriseDataValidator())
    assert report.skipped == 2 and report.received == 0
    assert {e.reasons for e in store.list()} == {("line: wrong_field_count",), ("line: too_long",)}


def test_unlinked_rejected_file_lines_are_quarantined(store: QuarantineStore, tmp_path: Path) -> None:
    path = tmp_path / "new.ndjson"
    path.write_bytes(line(1) + b"\n\n" + line(2, tier="gold") + b"\n{broken\n")
    report = store.replay_file(path, EnterpriseDataValidator(), accepted_out=io.BytesIO())
    assert (report.received, report.accepted, report.rejected) == (3, 1, 2)
    assert len(report.new_ids) == 2
    entries = store.list()
    assert [(e.source, e.line_no) for e in entries] == [(str(path), 3), (str(path), 4)]
    assert entries[0].raw == line(2, tier="gold") and entries[1].raw == b"{broken"


def test_replay_through_a_pipeline(store: QuarantineStore, tmp_path: Path) -> None:
    def quarantine(rejected: pl.DataFrame) -> None:
        store.add(rejected)

    pipeline = Pipeline(load_rules(), on_rejected=quarantine)
    pipeline.ingest(b"\n".join([line(1), line(2, market="XX")]))
    assert store.count() == 1
    export, fixed = tmp_path / "e.ndjson", tmp_path / "f.ndjson"
    store.export(export)
    _fix_market(export, fixed)
    report = store.replay_file(fixed, pipeline)
    assert report.accepted == 1 and report.replayed_ids == [1]
    assert pipeline.counters.accepted == 2 and pipeline.counters.balanced
    assert pipeline.on_rejected is quarantine  # restored after the replay
    again = store.replay_file(fixed, pipeline)
    assert again.duplicates == 1 and pipeline.counters.duplicates == 1
    assert store.count(state="all") == 1  # the pipeline's quarantine callback did not add copies


def test_hostile_replay_file_lines_never_crash(store: QuarantineStore, tmp_path: Path) -> None:
    path = tmp_path / "hostile.ndjson"
    path.write_bytes(
        b'{"quarantine_id":1,"raw":"\xff"}\n'  # looks like an export record, but invalid UTF-8
        b'{"quarantine_id":"one","raw":"{}"}\n'  # wrong type for the id
        b'{"quarantine_id":2,"raw_b64":"!!notbase64"}\n'  # undecodable payload: skipped
        b'{"quarantine_id":3,"raw":"{\\"event_id\\":\\"\\ud800\\"}"}\n'  # lone surrogate inside the raw text
        + b"[" * 5000
        + b"\n"  # deeply nested
    )
    report = store.replay_file(path, EnterpriseDataValidator(), accepted_out=io.BytesIO())
    assert report.skipped == 1 and report.received == 4 and report.balanced
    assert report.rejected == 4 and len(report.new_ids) == 4
