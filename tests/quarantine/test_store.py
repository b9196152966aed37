"""QuarantineStore on a real SQLite file: raw bytes kept verbatim, counts, export, durability, purge."""

from __future__ import annotations

import base64
import sqlite3
import stat
from pathlib import Path

import msgspec
import polars as pl
import pytest

from tests.quarantine.conftest import ingest, line
from tunewatch.quarantine.rows import MIGRATIONS
from tunewatch.quarantine.store import QuarantineError, QuarantineStore
from tunewatch.validate.validator import REJECTED_SCHEMA

HOSTILE_RAW = [
    b'{"event_id":"a","user_id":"\xff\xfe"}',  # invalid UTF-8
    b'{"event_id":"b\x00\x01\x07","ts":1}',  # NUL and other C0 controls
    b'{"event_id":"c\x1b[31mred\x1b[0m"}',  # ANSI escape
    '{"event_id":"d\u202eevil\u2066"}'.encode(),  # bidi override / isolate
    b'{"event_id":"e"}\r',  # CRLF line ending kept
    b'{"event_id":"f","x":"\xed\xa0\x80"}',  # UTF-8-encoded surrogate (invalid)
    b"\x80\x81 not json at all \xc0\xaf",  # overlong encoding, not JSON
    b"",  # a line too long to keep
    b'{"event_id":"g","big":"' + b"x" * 60_000 + b'"}',
    b"<script>alert(1)</script>'; DROP TABLE quarantine; --",
]


def _frame(raws: list[bytes], reasons: list[list[str]] | None = None) -> pl.DataFrame:
    n = len(raws)
    return pl.DataFrame(
        {
            "source": ["hostile.ndjson"] * n,
            "line_no": list(range(1, n + 1)),
            "event_id": [f"h{i}" for i in range(n)],
            "reasons": reasons or [["line: invalid_json"]] * n,
            "raw": raws,
        },
        schema=REJECTED_SCHEMA,
    )


def test_raw_bytes_round_trip_exactly_across_restart(db_path: Path) -> None:
    with QuarantineStore(db_path) as store:
        assert store.add(_frame(HOSTILE_RAW), received_at=1_000.0) == len(HOSTILE_RAW)
    with QuarantineStore(db_path) as reopened:
        entries = reopened.list(limit=None)
        assert [e.raw for e in entries] == HOSTILE_RAW
        assert all(isinstance(e.raw, bytes) for e in entries)
        assert [e.line_no for e in entries] == list(range(1, len(HOSTILE_RAW) + 1))
        assert {e.source for e in entries} == {"hostile.ndjson"}
        assert {e.received_at for e in entries} == {1_000.0}
        assert reopened.count() == len(HOSTILE_RAW)  # the SQL-looking raw line did nothing
        first = reopened.get(entries[0].id)
        assert first is not None and first.raw == HOSTILE_RAW[0] and first.state == "pending"


def test_rejected_events_from_the_validator_keep_their_bytes_and_reasons(store: QuarantineStore) -> None:
    lines = [
        line(1),
        line(2, market="XX"),
        b'{"event_id":"e3","user_id":"\xff\xfe"}',
        b'{"event_id":"e4\x1b[31m\x00","ts":1}',
        b"not json",
        line(6, ip_addr="999.1.1.1"),
    ]
    result = ingest(store, lines)
    assert (result.accepted, result.rejected_count) == (1, 5)
    by_line = {e.line_no: e for e in store.list(limit=None)}
    assert set(by_line) == {2, 3, 4, 5, 6}
    for no, entry in by_line.items():
        assert no is not None and entry.raw == lines[no - 1]
        assert entry.source == "events.ndjson"
    assert by_line[2].reasons == ("market: unknown_country",)
    assert by_line[2].event_id == "e2"
    assert "user_id: invalid_utf8" in by_line[3].reasons
    assert by_line[5].reasons == ("line: invalid_json",) and by_line[5].event_id is None
    assert by_line[6].reasons == ("ip_addr: not_ip",)


def test_add_is_batched_and_ids_increase(store: QuarantineStore) -> None:
    assert store.add(pl.DataFrame(schema=REJECTED_SCHEMA)) == 0
    store.add(_frame([b"{}"] * 3))
    store.add(_frame([b"{}"] * 2))
    assert [e.id for e in store.list(limit=None)] == [1, 2, 3, 4, 5]


def test_ids_are_not_reused_after_purge(store: QuarantineStore) -> None:
    store.add(_frame([b"{}"] * 3), received_at=10.0)
    assert store.purge(older_than=20.0) == 3
    store.add(_frame([b"{}"]), received_at=30.0)
    assert [e.id for e in store.list(limit=None)] == [4]


def test_add_names_missing_columns(store: QuarantineStore) -> None:
    with pytest.raises(QuarantineError, match=r"lacks column.*raw"):
        store.add(pl.DataFrame({"source": ["s"], "line_no": [1], "event_id": ["e"], "reasons": [["x: y"]]}))


def test_counts_and_filters(store: QuarantineStore) -> None:
    ingest(store, [line(1, market="XX"), line(2, market="zz"), line(3, tier="gold")], source="a.ndjson",
           received_at=100.0)  # fmt: skip
    ingest(store, [line(4, market="XX", platform="fridge"), b"{oops"], source="b.ndjson", received_at=200.0)
    assert store.count_by_reason() == {
        "market: unknown_country": 3,
        "line: invalid_json": 1,
        "platform: not_in_enum": 1,
        "tier: not_in_enum": 1,
    }
    assert store.count_by_reason(source="b.ndjson") == {
        "line: invalid_json": 1,
        "market: unknown_country": 1,
        "platform: not_in_enum": 1,
    }
    assert store.count_by_source() == {"a.ndjson": 3, "b.ndjson": 2}
    assert [e.event_id for e in store.list(reason="market: unknown_country")] == ["e1", "e2", "e4"]
    assert [e.event_id for e in store.list(reason="platform")] == ["e4"]  # a field: any of its reasons
    assert [e.event_id for e in store.list(reason="plat")] == []  # not a prefix match on field names
    assert [e.event_id for e in store.list(source="a.ndjson", reason="tier")] == ["e3"]
    assert len(store.list(since=150.0)) == 2
    assert len(store.list(limit=2)) == 2
    assert store.time_range() == (100.0, 200.0)
    assert store.count(reason="market") == 3


def test_export_ndjson_is_lossless(store: QuarantineStore, tmp_path: Path) -> None:
    store.add(_frame(HOSTILE_RAW), received_at=0.0)
    out = tmp_path / "export.ndjson"
    assert store.export(out) == len(HOSTILE_RAW)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600  # it holds personal data as received
    lines = out.read_bytes().splitlines()
    assert len(lines) == len(HOSTILE_RAW)  # control characters are escaped: one record per line
    records = [msgspec.json.decode(x) for x in lines]
    restored = [r["raw"].encode() if "raw" in r else base64.b64decode(r["raw_b64"]) for r in records]
    assert restored == HOSTILE_RAW
    assert "raw_b64" in records[0] and "raw" in records[1]
    assert records[0]["quarantine_id"] == 1 and records[0]["reasons"] == ["line: invalid_json"]
    assert records[0]["received_at"] == "1970-01-01T00:00:00.000Z" and records[0]["line_no"] == 1


def test_export_raw_lines_only(store: QuarantineStore, tmp_path: Path) -> None:
    raws = [line(1, market="XX"), b'{"event_id":"x","user_id":"\xff"}', b""]
    store.add(_frame(raws))
    out = tmp_path / "raw.ndjson"
    assert store.export(out, "raw") == 2  # the line that was not kept is left out
    assert out.read_bytes() == raws[0] + b"\n" + raws[1] + b"\n"
    assert store.export(tmp_path / "one.ndjson", "raw", reason="line") == 2
    with pytest.raises(QuarantineError, match="unknown export format 'csv'"):
        store.export(tmp_path / "x.csv", "csv")  # type: ignore[arg-type]


def test_mark_replayed_and_state_survive_restart(db_path: Path) -> None:
    with QuarantineStore(db_path) as store:
        store.add(_frame([b"{}"] * 3))
        assert store.mark_replayed([1, 3], at=50.0) == 2
        assert store.mark_replayed([1]) == 0  # already replayed
    with QuarantineStore(db_path) as store:
        assert [e.id for e in store.list()] == [2]
        replayed = store.list(state="replayed")
        assert [(e.id, e.outcome, e.replayed_at) for e in replayed] == [(1, "accepted", 50.0), (3, "accepted", 50.0)]
        assert store.count(state="all") == 3


def test_database_is_wal_and_migrated_once(db_path: Path) -> None:
    QuarantineStore(db_path).close()
    QuarantineStore(db_path).close()
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        version = conn.execute("SELECT version FROM schema_migrations WHERE component = 'store.quarantine'")
        assert version.fetchone()[0] == len(MIGRATIONS) == 3
    finally:
        conn.close()


def test_a_pipeline_and_the_cli_share_the_file(db_path: Path) -> None:
    writer, reader = QuarantineStore(db_path), QuarantineStore(db_path)
    try:
        writer.add(_frame([b"{}"]))
        assert reader.count() == 1  # committed data is visible to another connection at once
    finally:
        writer.close()
        reader.close()


def test_missing_database_is_not_created_when_asked(tmp_path: Path) -> None:
    with pytest.raises(QuarantineError, match="no quarantine database at"):
        QuarantineStore(tmp_path / "none.db", create=False)
    assert not (tmp_path / "none.db").exists()


def test_purge_replayed_only(store: QuarantineStore) -> None:
    store.add(_frame([b"{}"] * 4), received_at=10.0)
    store.mark_replayed([1, 2])
    assert store.purge(older_than=11.0, replayed_only=True) == 2
    assert [e.id for e in store.list(state="all")] == [3, 4]
    assert store.purge(older_than=5.0) == 0


@pytest.mark.slow
def test_bulk_add_of_100k_rows_in_one_batch(store: QuarantineStore, tmp_path: Path) -> None:
    n = 100_000
    frame = pl.DataFrame(
        {
            "source": ["bulk.ndjson"] * n,
            "line_no": range(1, n + 1),
            "event_id": [f"e{i}" for i in range(n)],
            "reasons": [["market: unknown_country", "tier: not_in_enum"] if i % 4 == 0 else ["market: unknown_country"]
                        for i in range(n)],
            "raw": [b'{"event_id":"e%d","market":"XX","user_id":"u\xff"}' % i for i in range(n)],
        },
        schema=REJECTED_SCHEMA,
    )  # fmt: skip
    assert store.add(frame) == n
    assert store.count_by_reason() == {"market: unknown_country": n, "tier: not_in_enum": n // 4}
    assert store.export(tmp_path / "all.ndjson", "raw") == n
    assert (tmp_path / "all.ndjson").read_bytes().count(b"\n") == n
    last = store.get(n)
    assert last is not None and last.raw == frame.get_column("raw")[-1]
