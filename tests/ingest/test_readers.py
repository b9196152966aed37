"""Readers: chunking, line numbers and raw bytes, compression, formats, the typed fast path and byte screens."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import polars as pl
import pytest
import zstandard

from tests.validate.corpus import NOW_MS, TS, line
from tunewatch.ingest.readers import parse_ndjson_bytes, read_events
from tunewatch.ingest.screen import first_long_line, line_spans, nonblank, text_is_clean
from tunewatch.validate import EnterpriseDataValidator


def _validate_file(path: Path, **kwargs: int) -> tuple[int, int, int, int, list[tuple[int, list[str], bytes]]]:
    validator = EnterpriseDataValidator(clock=lambda: NOW_MS / 1000)
    received = accepted = rejected = dups = 0
    details: list[tuple[int, list[str], bytes]] = []
    for batch in read_events(path, **kwargs):
        r = validator.validate(batch)
        received, accepted, rejected, dups = (
            received + r.received, accepted + r.accepted, rejected + r.rejected_count, dups + r.duplicates
        )  # fmt: skip
        details += list(
            zip(
                r.rejected["line_no"].to_list(),
                r.rejected["reasons"].to_list(),
                r.rejected["raw"].to_list(),
                strict=True,
            )
        )
    return received, accepted, rejected, dups, sorted(details)


def _stream() -> list[bytes]:
    lines = [line(event_id=f"e{i}", ts=TS + i) for i in range(200)]
    lines[17] = line(event_id="bad-market", market="xx")
    lines[101] = b"{not json"
    lines[150] = line(event_id="ctrl", user_id="u\u202e")
    return lines


@pytest.mark.parametrize("compression", [None, "gzip", "zstd"])
def test_line_numbers_and_raw_bytes_survive_chunking(tmp_path: Path, compression: str | None) -> None:
    lines = _stream()
    data = b"\n".join(lines[:60]) + b"\n\n  \n" + b"\n".join(lines[60:]) + b"\n"  # blank lines in between
    path = tmp_path / "events.ndjson"
    if compression == "gzip":
        path = path.with_suffix(".ndjson.gz")
        data = gzip.compress(data)
    elif compression == "zstd":
        path = path.with_suffix(".ndjson.zst")
        data = zstandard.ZstdCompressor().compress(data)
    path.write_bytes(data)
    received, accepted, rejected, dups, details = _validate_file(path, chunk_bytes=1500)
    assert (received, accepted, rejected, dups) == (200, 197, 3, 0)
    assert [(no, reasons) for no, reasons, _ in details] == [
        (18, ["market: unknown_country"]), (104, ["line: invalid_json"]), (153, ["user_id: control_chars"]),
    ]  # fmt: skip
    assert [raw for _, _, raw in details] == [lines[17], lines[101], lines[150]]


def test_a_byte_order_mark_starts_a_file_without_costing_its_first_event(tmp_path: Path) -> None:
    bom = b"\xef\xbb\xbf"
    lines = [line(event_id="first"), line(event_id="second"), bom + line(event_id="bom-mid-file")]
    path = tmp_path / "windows.ndjson"
    path.write_bytes(bom + b"\n".join(lines) + b"\n")
    received, accepted, rejected, _, details = _validate_file(path, chunk_bytes=4096)
    assert (received, accepted, rejected) == (3, 2, 1)  # only at the start is the mark ignored
    assert [(no, reasons) for no, reasons, _ in details] == [(3, ["line: invalid_json"])]
    body = parse_ndjson_bytes(bom + lines[0])  # a network body must not carry one (RFC 8259): a bad line
    assert EnterpriseDataValidator(clock=lambda: NOW_MS / 1000).validate(body).rejected_count == 1
    frame = pl.read_ndjson(io.BytesIO(b"\n".join(lines[:2]))).select("event_id", "ts", "event_type", "market")
    sheet = tmp_path / "sheet.csv"  # as a spreadsheet saves "CSV UTF-8"
    sheet.write_bytes(bom + frame.write_csv().encode())
    assert [b.frame["event_id"].to_list() for b in read_events(sheet)] == [["first", "second"]]


def test_line_longer_than_a_chunk_is_rejected_and_the_rest_read(tmp_path: Path) -> None:
    path = tmp_path / "long.ndjson"
    huge = line(event_id="huge", user_agent="x" * 200_000)
    path.write_bytes(b"\n".join([line(event_id="a"), huge, line(event_id="b")]) + b"\n")
    received, accepted, rejected, _, details = _validate_file(path, chunk_bytes=4096)
    assert (received, accepted, rejected) == (3, 2, 1)
    no, reasons, raw = details[0]
    assert (no, reasons) == (2, ["line: too_long"])
    assert raw == huge[: 64 * 1024]


def test_rfc3339_times_take_the_text_path_with_the_same_verdicts(tmp_path: Path) -> None:
    path = tmp_path / "rfc.ndjson"
    path.write_bytes(
        b"\n".join(
            [
                line(event_id="z", ts="2026-01-04T23:59:00Z"),
                line(event_id="off", ts="2026-01-05T01:59:00+02:00"),
                line(event_id="bad", ts="2026-13-45T00:00:00Z"),
            ]
        )
        + b"\n"
    )
    validator = EnterpriseDataValidator(clock=lambda: NOW_MS / 1000)
    result = validator.validate(next(read_events(path)))
    assert result.valid["ts"].to_list() == [NOW_MS - 60_000, NOW_MS - 60_000]
    assert result.rejected["reasons"].to_list() == [["ts: bad_timestamp"]]


def test_typed_fast_path_is_used_for_clean_chunks() -> None:
    batch = parse_ndjson_bytes(b"\n".join(line(event_id=f"e{i}") for i in range(5)))
    assert batch.frame.schema["ms_played"] == pl.Int64
    assert batch.frame.schema["offline"] == pl.Boolean
    assert batch.text_clean


def test_csv_and_parquet_give_the_same_verdicts(tmp_path: Path) -> None:
    rows = [
        {"event_id": "ok", "ts": TS, "event_type": "ad", "user_id": "u", "market": "SE", "platform": "web",
         "tier": "free", "ad_revenue_micros": 5},
        {"event_id": "ctl", "ts": TS, "event_type": "ad", "user_id": "u\x07", "market": "SE", "platform": "web",
         "tier": "free", "ad_revenue_micros": 5},
        {"event_id": "neg", "ts": TS, "event_type": "ad", "user_id": "u", "market": "SE", "platform": "web",
         "tier": "free", "ad_revenue_micros": -5},
    ]  # fmt: skip
    frame = pl.DataFrame(rows)
    frame.write_csv(tmp_path / "e.csv")
    frame.write_parquet(tmp_path / "e.parquet")
    for name in ("e.csv", "e.parquet"):
        _, accepted, _, _, details = _validate_file(tmp_path / name)
        assert accepted == 1
        assert [reasons for _, reasons, _ in details] == [
            ["user_id: control_chars"],
            ["ad_revenue_micros: out_of_range"],
        ]


@pytest.mark.parametrize(
    ("chunk", "clean"),
    [
        (b'{"a":"plain text, with spaces inside"}\n', True),
        (b'{"a":"esc\\u0041"}\n', False),
        (b'{"a":"caf\xc3\xa9"}\n', True),
        (b'{"a":"nbsp\xc2\xa0"}\n', False),
        (b'{"a":"rlo\xe2\x80\xae"}\n', False),
        (b'{"a":" padded"}\n', False),
        (b'{"a": "json.dumps style", "b": 1}\n', True),  # spaces between tokens are not padding
        (b'{"a": "trailing "}\n', False),
        (b'{"a": " leading", "b": 1}\n', False),
        (b'{"a" : "x" }\n{"b": "y"}\n', True),
        (b'{"a":"del\x7f"}\n', False),
    ],
)
def test_text_screen(chunk: bytes, clean: bool) -> None:
    assert text_is_clean(chunk) is clean


def test_long_line_search_and_spans() -> None:
    chunk = b"ab\n" + b"x" * 10 + b"\r\n\n  \nz"
    assert first_long_line(chunk, 10) == 3
    assert first_long_line(chunk, 11) == -1
    starts, ends = line_spans(chunk)
    assert [chunk[s:e] for s, e in zip(starts.tolist(), ends.tolist(), strict=True)] == [
        b"ab", b"x" * 10, b"", b"  ", b"z",
    ]  # fmt: skip
    assert nonblank(chunk, starts, ends).tolist() == [True, True, False, False, True]
