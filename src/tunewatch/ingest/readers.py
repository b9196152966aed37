"""Chunked, dirty-tolerant readers for NDJSON, CSV and Parquet event files.

Memory is bounded by the chunk size, whatever the file size. A bad line never fails a file: a chunk whose
fast columnar parse fails is re-read line by line, the undecodable lines are reported with their reason, and
the rest is parsed again in columnar form.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Literal, cast

import numpy as np
import numpy.typing as npt
import polars as pl
import zstandard

from tunewatch.errors import InputError
from tunewatch.ingest.batch import RawBatch, UndecodableLine, conform
from tunewatch.ingest.coerce import records_to_raw_frame
from tunewatch.ingest.jsonline import LineProblem, decode_line
from tunewatch.ingest.screen import (
    bool_tokens,
    first_long_line,
    line_spans,
    may_nest,
    nonblank,
    structured_lines,
    text_is_clean,
)
from tunewatch.schema import FIELDS, RAW_SCHEMA, Kind

Format = Literal["ndjson", "csv", "parquet"]

DEFAULT_CHUNK_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_LINE_BYTES = 64 * 1024
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
        return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
    return raw


# --------------------------------------------------------------------------------------------- NDJSON


def _read_ndjson(p: Path, chunk_bytes: int, max_line_bytes: int) -> Iterator[RawBatch]:
    source = str(p)
    line_no = 0  # lines consumed before the current chunk
    with _open_text_stream(p) as stream:
        carry = b""
        skipping_long = False  # inside an over-long line, discarding until its newline
        long_line_start = 0
        long_head = b""
        while True:
            block = stream.read(chunk_bytes)
            if not block:
                break
            data = carry + block
            cut = data.rfind(b"\n")
            if cut < 0:
                if len(data) > max_line_bytes:
                    if not skipping_long:
                        skipping_long, long_line_start, long_head = True, line_no + 1, data[:max_line_bytes]
                    carry = b""
                else:
                    carry = data
                continue
            chunk, carry = data[: cut + 1], data[cut + 1 :]
            if skipping_long:
                nl = chunk.find(b"\n")
                yield _too_long(source, long_line_start, max_line_bytes, long_head)
                chunk = chunk[nl + 1 :]
                line_no += 1
                skipping_long = False
            n_lines = chunk.count(b"\n")
            if chunk:
                yield _parse_ndjson_chunk(chunk, source, line_no, max_line_bytes)
            line_no += n_lines
        if skipping_long:
            yield _too_long(source, long_line_start, max_line_bytes, long_head)
        elif carry.strip():
            yield _parse_ndjson_chunk(carry + b"\n", source, line_no, max_line_bytes)


def _too_long(source: str, line_no: int, limit: int, head: bytes) -> RawBatch:
    bad = UndecodableLine(line_no, head, "line: too_long", f"line longer than {limit} bytes (first {limit} kept)")
    return RawBatch(frame=pl.DataFrame(schema=RAW_SCHEMA), source=source, undecodable=[bad])


def _parse_ndjson_chunk(chunk: bytes, source: str, first_line: int, max_line_bytes: int) -> RawBatch:
    """Columnar parse of a chunk of whole lines, exact per-line decoding only where the fast path cannot vouch.

    The fast path is one ``pl.read_ndjson`` over the chunk. Polars turns nested values and booleans into text,
    so lines that may hold a nested value, and rows where a non-boolean field reads ``true``/``false`` while the
    chunk holds more boolean literals than the boolean fields account for, are decoded again exactly. A chunk
    Polars refuses (invalid JSON or UTF-8, NaN, deep nesting) or that holds an over-long line is decoded line by
    line.
    """
    if first_long_line(chunk, max_line_bytes) < 0:
        frame = _read_columnar(chunk)
        if frame is not None:
            batch = _LazyRawBatch(frame=frame, source=source, chunk=chunk, first_line=first_line)
            batch.text_clean = text_is_clean(chunk)
            _refine_types(batch, chunk)
            return batch
    return _parse_lines(chunk, source, first_line, max_line_bytes)


#: Schema of the typed first attempt: Polars refuses a chunk in it if any value has the wrong JSON type.
TYPED_READ_SCHEMA = pl.Schema(
    {
        f.name: pl.Int64 if f.kind in (Kind.INT, Kind.TIMESTAMP) else pl.Boolean if f.kind is Kind.BOOL else pl.String
        for f in FIELDS
    }
)


def _read_columnar(chunk: bytes) -> pl.DataFrame | None:
    """Typed parse (ints, epoch-ms times and bools as such) when it takes the chunk, else all-text, else None.

    The typed attempt is skipped when the chunk's first line holds a text timestamp (RFC 3339 input).
    """
    head = chunk[: chunk.find(b"\n") + 1 or 4096]
    attempts = (RAW_SCHEMA,) if b'"ts":"' in head or b'"ts": "' in head else (TYPED_READ_SCHEMA, RAW_SCHEMA)
    for schema in attempts:
        try:
            return pl.read_ndjson(io.BytesIO(chunk), schema=schema)
        except (pl.exceptions.PolarsError, ValueError, OSError):  # OSError: Polars sniffs compression magic
            continue
    return None


def as_text(frame: pl.DataFrame) -> pl.DataFrame:
    """A frame read typed, turned into ``RAW_SCHEMA`` text (ints in decimal, bools as true/false)."""
    typed_cols = [name for name, dtype in frame.schema.items() if dtype != pl.String]
    return frame.with_columns(pl.col(typed_cols).cast(pl.String)) if typed_cols else frame


_NON_BOOL = tuple(f.name for f in FIELDS if f.kind is not Kind.BOOL)
_BOOLS = tuple(f.name for f in FIELDS if f.kind is Kind.BOOL)


def _refine_types(batch: _LazyRawBatch, chunk: bytes) -> None:
    """Re-decode exactly the rows whose JSON types the columnar parse may have hidden (in place)."""
    frame = batch.frame
    if not frame.height:
        return
    suspects = np.zeros(frame.height, dtype=bool)
    if may_nest(chunk):
        starts, ends, keep = batch.spans()
        suspects |= structured_lines(chunk, starts, ends)[keep]
    literals = bool_tokens(chunk)
    if literals:
        if all(frame.schema[name] == pl.Boolean for name in _BOOLS):
            declared = sum(frame.height - frame.get_column(name).null_count() for name in _BOOLS)
        else:
            as_bool = pl.col(_BOOLS).cast(pl.String).is_in(["true", "false"])
            declared = frame.select(pl.sum_horizontal(as_bool.sum())).item()
        if literals > declared:
            text_cols = [name for name in _NON_BOOL if frame.schema[name] == pl.String]
            text_bool = frame.select(pl.any_horizontal(pl.col(text_cols).is_in(["true", "false"])).fill_null(False))
            suspects |= text_bool.to_series().to_numpy()
    rows = np.flatnonzero(suspects)
    if not rows.size:
        return
    records: list[dict[str, str | None]] = []
    for line in batch.raws_of(rows.tolist()):
        decoded = decode_line(line)
        records.append(decoded if isinstance(decoded, dict) else {})
    fixed = records_to_raw_frame(records).with_columns(pl.Series("__row", rows, dtype=pl.UInt32))
    batch.frame = (
        as_text(frame).with_row_index("__row").update(fixed, on="__row", how="left", include_nulls=True).drop("__row")
    )
    batch.text_clean = False


def _parse_lines(chunk: bytes, source: str, first_line: int, max_line_bytes: int) -> RawBatch:
    """Slow path: decode each line on its own; keep decodable objects in columnar form and report the rest."""
    good: list[dict[str, str | None]] = []
    raws: list[bytes] = []
    good_nos: list[int] = []
    bad: list[UndecodableLine] = []
    for i, line in enumerate(chunk.split(b"\n")):
        stripped = line.strip()
        if not stripped:
            continue
        no = first_line + i + 1
        if len(line) > max_line_bytes:
            detail = f"line longer than {max_line_bytes} bytes (first {max_line_bytes} kept)"
            bad.append(UndecodableLine(no, line[:max_line_bytes], "line: too_long", detail))
            continue
        decoded = decode_line(stripped)
        if isinstance(decoded, LineProblem):
            bad.append(UndecodableLine(no, stripped, decoded.reason, decoded.detail))
            continue
        good.append(decoded)
        raws.append(stripped)
        good_nos.append(no)
    frame = records_to_raw_frame(good)
    return RawBatch(frame=frame, source=source, line_nos=good_nos, raw_lines=raws, undecodable=bad)


class _LazyRawBatch(RawBatch):
    """A batch from the fast path: line numbers and raw bytes are located (vectorised) only if someone asks."""

    __slots__ = ("_chunk", "_first_line", "_spans")

    def __init__(self, frame: pl.DataFrame, source: str, chunk: bytes, first_line: int) -> None:
        super().__init__(frame=frame, source=source)
        self._chunk = chunk
        self._first_line = first_line
        self._spans: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.bool_]] | None = None

    def spans(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        """Start and end of every line of the chunk and the mask of the non-blank ones (the rows)."""
        if self._spans is None:
            starts, ends = line_spans(self._chunk)
            self._spans = (starts, ends, nonblank(self._chunk, starts, ends))
        return self._spans

    def _row_lines(self) -> npt.NDArray[np.int64]:
        return np.flatnonzero(self.spans()[2])

    def raws_of(self, rows: Sequence[int]) -> list[bytes]:
        starts, ends, _ = self.spans()
        idx = self._row_lines()[np.asarray(rows, dtype=np.int64)]
        chunk = self._chunk
        return [chunk[s:e] for s, e in zip(starts[idx].tolist(), ends[idx].tolist(), strict=True)]

    def lines_of(self, rows: Sequence[int]) -> list[int]:
        idx = self._row_lines()[np.asarray(rows, dtype=np.int64)]
        return (idx + self._first_line + 1).tolist()


# ------------------------------------------------------------------------------------------------ CSV


def _read_csv(p: Path, chunk_bytes: int) -> Iterator[RawBatch]:
    source = str(p)
    with _open_text_stream(p) as stream:
        header = stream.readline()
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


def parse_ndjson_bytes(data: bytes, source: str = "bytes", max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> RawBatch:
    """Parse an in-memory NDJSON payload (an HTTP body) with the same dirty-tolerant path as files."""
    if not data.endswith(b"\n"):
        data += b"\n"
    return _parse_ndjson_chunk(data, source, 0, max_line_bytes)
