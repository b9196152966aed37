"""Chunked, dirty-tolerant readers for NDJSON, CSV and Parquet event files.

Memory is bounded by the chunk size, whatever the file size. A bad line never fails a file: a chunk whose
fast columnar parse fails is re-read line by line, the undecodable lines are reported with their reason, and
the rest is parsed again in columnar form.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Literal, cast

import polars as pl
import zstandard

from tunewatch.errors import InputError
from tunewatch.ingest.batch import RawBatch, UndecodableLine, conform
from tunewatch.ingest.coerce import records_to_raw_frame
from tunewatch.ingest.ndjson import DEFAULT_MAX_LINE_BYTES, UTF8_BOM, parse_ndjson_bytes, read_ndjson_stream
from tunewatch.schema import RAW_SCHEMA

Format = Literal["ndjson", "csv", "parquet"]

DEFAULT_CHUNK_BYTES = 16 * 1024 * 1024
_SUFFIXES: dict[str, Format] = {
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".json": "ndjson",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_GZIP_MAGIC = b"\x1f\x8b"


def compression_of(path: Path) -> Literal["gzip", "zstd"] | None:
    """Compression named by the file's last suffix (``.gz``, ``.zst``/``.zstd``), if any."""
    last = path.suffix.lower()
    return "gzip" if last == ".gz" else "zstd" if last in (".zst", ".zstd") else None


def format_from_suffix(path: Path) -> Format | None:
    """Format named by the file's extension (after a compression suffix), or None."""
    suffixes = [s.lower() for s in path.suffixes]
    while suffixes and suffixes[-1] in (".gz", ".zst", ".zstd"):
        suffixes.pop()
    return _SUFFIXES.get(suffixes[-1]) if suffixes else None


def detect_format(path: Path) -> Format:
    """Format of ``path`` from its extension (after a ``.gz``/``.zst`` suffix) or, failing that, its content."""
    named = format_from_suffix(path)
    if named is not None:
        return named
    head = _open_text_stream(path).read(4096)
    if head.startswith(b"PAR1"):
        return "parquet"
    stripped = head.lstrip()
    if stripped.startswith(b"{"):
        return "ndjson"
    first = stripped.split(b"\n", 1)[0]
    if b"," in first and b"event_id" in first:
        return "csv"
    raise InputError(f"{path}: unknown format (expected .ndjson, .jsonl, .csv or .parquet, optionally .gz/.zst)")


def read_events(
    path: Path | str,
    *,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    fmt: Format | None = None,
) -> Iterator[RawBatch]:
    """Yield :class:`RawBatch` chunks of the events in ``path`` in file (arrival) order.

    Raises :class:`InputError` (with the file name and the problem) for a missing, empty, binary or
    unknown-format file; problems inside a usable file become undecodable lines, never exceptions.
    """
    p = Path(path)
    _check_usable(p)
    kind = fmt or detect_format(p)
    if kind == "parquet":
        yield from _read_parquet(p, chunk_rows=max(1, chunk_bytes // 256))
    elif kind == "csv":
        yield from _read_csv(p, chunk_bytes)
    else:
        yield from _read_ndjson(p, chunk_bytes, max_line_bytes)


def _check_usable(p: Path) -> None:
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if p.is_dir():
        raise InputError(f"{p}: is a directory, not an events file")
    if p.stat().st_size == 0:
        raise InputError(f"{p}: file is empty")
    try:
        head = _open_text_stream(p).read(8192)
    except (OSError, EOFError, zstandard.ZstdError) as exc:
        raise InputError(f"{p}: cannot be read ({exc.__class__.__name__}: corrupt compressed data?)") from exc
    if head.startswith(b"PAR1"):
        return
    if not head.strip():
        raise InputError(f"{p}: file is empty")
    if b"\x00" in head or _binary_share(head) > 0.3:
        raise InputError(f"{p}: binary file, not NDJSON, CSV or Parquet events")


def _binary_share(head: bytes) -> float:
    text_bytes = sum(1 for b in head if b >= 32 or b in (9, 10, 13))
    try:
        head.decode("utf-8")
        return 0.0
    except UnicodeDecodeError:
        return 1.0 - text_bytes / max(1, len(head))


def _open_text_stream(p: Path) -> IO[bytes]:
    raw = p.open("rb")
    magic = raw.read(4)
    raw.seek(0)
    if magic.startswith(_GZIP_MAGIC):
        return cast(IO[bytes], gzip.GzipFile(fileobj=raw))
    if magic == _ZSTD_MAGIC:
        # buffered, so that line-oriented readers (CSV header, csv module) can use readline()
        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True))
    return raw


def _read_ndjson(p: Path, chunk_bytes: int, max_line_bytes: int) -> Iterator[RawBatch]:
    with _open_text_stream(p) as stream:
        yield from read_ndjson_stream(stream, str(p), chunk_bytes, max_line_bytes)


# ------------------------------------------------------------------------------------------------ CSV


def _read_csv(p: Path, chunk_bytes: int) -> Iterator[RawBatch]:
    source = str(p)
    with _open_text_stream(p) as stream:
        header = stream.readline().removeprefix(UTF8_BOM)  # "CSV UTF-8" as spreadsheets save it
        if not header.strip():
            raise InputError(f"{p}: CSV file has no header line")
        names = next(csv.reader([header.decode("utf-8", errors="replace")]))
        if "event_id" not in names:
            raise InputError(f"{p}: CSV header has no event_id column (found: {', '.join(names[:8])})")
        row_no = 1
        carry = b""
        while True:
            block = stream.read(chunk_bytes)
            if not block and not carry:
                break
            data = carry + block
            cut = data.rfind(b"\n") if block else len(data) - 1
            if cut < 0:
                carry = data
                continue
            chunk, carry = data[: cut + 1], data[cut + 1 :]
            if chunk.strip():
                yield _parse_csv_chunk(header + chunk, names, source, row_no)
            row_no += chunk.count(b"\n")
            if not block:
                break


def _parse_csv_chunk(data: bytes, names: list[str], source: str, first_row: int) -> RawBatch:
    try:
        frame = pl.read_csv(io.BytesIO(data), infer_schema=False, raise_if_empty=False)
        return RawBatch(frame=conform(frame.with_columns(pl.all().replace("", None))), source=source)
    except (pl.exceptions.PolarsError, ValueError, OSError):
        pass
    rows: list[dict[str, object]] = []
    raw: list[bytes] = []
    nos: list[int] = []
    bad: list[UndecodableLine] = []
    lines = data.split(b"\n")[1:]
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        no = first_row + i + 1
        try:
            values = next(csv.reader([line.decode("utf-8")]))
        except (UnicodeDecodeError, csv.Error, StopIteration):
            bad.append(UndecodableLine(no, line, "line: invalid_csv", "row is not valid UTF-8 CSV"))
            continue
        if len(values) != len(names):
            detail = f"{len(values)} fields, header has {len(names)}"
            bad.append(UndecodableLine(no, line, "line: wrong_field_count", detail))
            continue
        rows.append({k: (v if v != "" else None) for k, v in zip(names, values, strict=True)})
        raw.append(line)
        nos.append(no)
    return RawBatch(frame=records_to_raw_frame(rows), source=source, line_nos=nos, raw_lines=raw, undecodable=bad)


# -------------------------------------------------------------------------------------------- Parquet


def _read_parquet(p: Path, chunk_rows: int) -> Iterator[RawBatch]:
    try:
        lf = pl.scan_parquet(p)
        names = lf.collect_schema().names()
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InputError(f"{p}: not a readable Parquet file ({exc.__class__.__name__})") from exc
    if "event_id" not in names:
        raise InputError(f"{p}: Parquet file has no event_id column")
    wanted = [n for n in RAW_SCHEMA.names() if n in names]
    offset = 0
    while True:
        part = lf.select(wanted).slice(offset, chunk_rows).collect()
        if part.height == 0:
            break
        yield RawBatch(frame=conform(part), source=str(p))
        offset += part.height


__all__ = ["DEFAULT_CHUNK_BYTES", "DEFAULT_MAX_LINE_BYTES", "detect_format", "parse_ndjson_bytes", "read_events"]
