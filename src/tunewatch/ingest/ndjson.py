"""NDJSON decoding: a columnar fast path over whole chunks, exact per-line decoding only where it is needed.

Polars parses a chunk in one call, first with ints, epoch-ms times and bools typed (it refuses the chunk if any
value has the wrong JSON type), else as text. Byte screens (:mod:`~tunewatch.ingest.screen`) find the lines
whose JSON types the text parse may hide; those are decoded line by line (:mod:`~tunewatch.ingest.jsonline`).
In a chunk Polars refuses, the lines that are not one JSON object are found by a compiled syntax pass
(:mod:`~tunewatch.ingest.syntax`) and decoded alone, the rest parsed in columnar form again; a chunk that pass
cannot explain is decoded line by line. A bad line never fails a chunk.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from typing import IO

import numpy as np
import numpy.typing as npt
import polars as pl

from tunewatch.ingest.batch import RawBatch, UndecodableLine
from tunewatch.ingest.coerce import records_to_raw_frame
from tunewatch.ingest.jsonline import LineProblem, decode_line
from tunewatch.ingest.screen import ChunkScreen, first_long_line, line_spans, nonblank, screen_chunk, structured_lines
from tunewatch.ingest.syntax import suspect_lines
from tunewatch.schema import FIELDS, RAW_SCHEMA, Kind

DEFAULT_MAX_LINE_BYTES = 64 * 1024
#: a UTF-8 byte-order mark, which some Windows tools write at the start of a file; JSON parsers may ignore it
#: there (RFC 8259 §8.1), and so does tunewatch's file reader (elsewhere, and in HTTP bodies, it is a bad line)
UTF8_BOM = b"\xef\xbb\xbf"


def read_ndjson_stream(stream: IO[bytes], source: str, chunk_bytes: int, max_line_bytes: int) -> Iterator[RawBatch]:
    """Yield batches of whole lines read from ``stream`` in ``chunk_bytes`` blocks (memory bounded by the block)."""
    line_no = 0  # lines consumed before the current chunk
    carry = b""
    skipping_long = False  # inside an over-long line, discarding until its newline
    long_line_start = 0
    long_head = b""
    first = True
    while True:
        block = stream.read(chunk_bytes)
        if not block:
            break
        if first:
            first = False
            block = block.removeprefix(UTF8_BOM)
        cut = block.rfind(b"\n")  # ``carry`` never holds a newline: the chunk ends at the block's last one
        if cut < 0:
            data = carry + block
            if len(data) > max_line_bytes:
                if not skipping_long:
                    skipping_long, long_line_start, long_head = True, line_no + 1, data[:max_line_bytes]
                carry = b""
            else:
                carry = data
            continue
        # one copy of the block into the chunk (not a concatenation and then a slice)
        chunk = carry + memoryview(block)[: cut + 1] if carry else block[: cut + 1]
        carry = block[cut + 1 :]
        if skipping_long:
            nl = chunk.find(b"\n")
            yield _too_long(source, long_line_start, max_line_bytes, long_head)
            chunk = chunk[nl + 1 :]
            line_no += 1
            skipping_long = False
        if chunk:
            batch = _parse_ndjson_chunk(chunk, source, line_no, max_line_bytes)
            # the chunk ends with a newline: the screen's lines are its newlines
            n_lines = batch.screen.lines if isinstance(batch, _LazyRawBatch) else chunk.count(b"\n")
            yield batch
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
    chunk holds more boolean literals than the boolean fields account for, are decoded again exactly. In a chunk
    Polars refuses (invalid JSON or UTF-8, NaN, deep nesting) the lines to blame are decoded alone and the rest is
    parsed again (:func:`_without_broken_lines`); a chunk that cannot be repaired so, or that holds an over-long
    line, is decoded line by line.
    """
    if first_long_line(chunk, max_line_bytes) < 0:
        frame = _read_columnar(chunk)
        if frame is not None:
            return _columnar_batch(frame, chunk, source, first_line)
        repaired = _without_broken_lines(chunk, source, first_line)
        if repaired is not None:
            return repaired
    return _parse_lines(chunk, source, first_line, max_line_bytes)


def _columnar_batch(
    frame: pl.DataFrame, chunk: bytes, source: str, first_line: int, screen: ChunkScreen | None = None
) -> _LazyRawBatch:
    batch = _LazyRawBatch(frame=frame, source=source, chunk=chunk, first_line=first_line, screen=screen)
    batch.text_clean = batch.screen.text_clean
    _refine_types(batch, chunk)
    return batch


def _without_broken_lines(chunk: bytes, source: str, first_line: int) -> RawBatch | None:
    """A chunk Polars refused, when what it refused are a few lines that are not JSON objects (truncated lines,
    say): those lines are decoded alone (:func:`decode_line` says why they cannot be) and the rest of the chunk
    is parsed in columnar form with them blanked out, so that its line numbers and bytes stay where they were.

    None (decode every line on its own) when no line is to blame, when a line the syntax test flags decodes
    after all, or when Polars refuses the rest too: the batch is then exactly the one line-by-line decoding
    makes."""
    screen = screen_chunk(chunk)
    starts, ends = line_spans(chunk, screen.newlines)
    suspects = np.flatnonzero(suspect_lines(chunk, starts, ends))
    if not suspects.size:
        return None
    broken: list[UndecodableLine] = []
    for i, start, end in zip(suspects.tolist(), starts[suspects].tolist(), ends[suspects].tolist(), strict=True):
        line = chunk[start:end].strip()
        if not line:  # only whitespace JSON does not allow (a vertical tab, say): no event, as line by line
            continue
        decoded = decode_line(line)
        if not isinstance(decoded, LineProblem):
            return None
        broken.append(UndecodableLine(first_line + i + 1, line, decoded.reason, decoded.detail))
    blanked = np.frombuffer(chunk, dtype=np.uint8).copy()
    line_ends = screen.newlines[suspects]  # the whole line, a carriage return included
    lengths = line_ends - starts[suspects]
    offsets = np.repeat(starts[suspects] - np.cumsum(lengths) + lengths, lengths) + np.arange(int(lengths.sum()))
    blanked[offsets] = ord(" ")  # a blank line is no row (Polars skips it, and so do the row spans)
    rest = blanked.tobytes()
    frame = _read_columnar(rest)
    if frame is None:
        return None
    batch = _columnar_batch(frame, rest, source, first_line, screen)
    batch.undecodable = broken
    return batch


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
    starts, ends, keep = batch.spans()  # from the screen's newlines, needed anyway to quarantine rows verbatim
    if batch.screen.may_nest:
        suspects |= structured_lines(chunk, starts, ends)[keep]
    literals = batch.screen.bool_literals
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
    fixed = records_to_raw_frame(records)  # every RAW_SCHEMA column: the rows are replaced whole, nulls included
    index = pl.Series(rows, dtype=pl.UInt32)
    text = as_text(frame)
    batch.frame = pl.DataFrame([text.get_column(name).scatter(index, fixed.get_column(name)) for name in text.columns])
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
    """A batch from the fast path: line numbers and raw bytes are located (vectorised) only if someone asks.

    ``screen`` holds the chunk's whole-chunk tests (one compiled pass over its bytes, with its newlines)."""

    __slots__ = ("_chunk", "_first_line", "_spans", "screen")

    def __init__(
        self, frame: pl.DataFrame, source: str, chunk: bytes, first_line: int, screen: ChunkScreen | None = None
    ) -> None:
        super().__init__(frame=frame, source=source)
        self._chunk = chunk
        self._first_line = first_line
        self._spans: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.bool_]] | None = None
        #: the chunk's screen (``screen``: one made for a chunk whose lines are where they are in this one)
        self.screen: ChunkScreen = screen if screen is not None else screen_chunk(chunk)

    def spans(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        """Start and end of every line of the chunk and the mask of the non-blank ones (the rows)."""
        if self._spans is None:
            starts, ends = line_spans(self._chunk, self.screen.newlines)
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


def parse_ndjson_bytes(data: bytes, source: str = "bytes", max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> RawBatch:
    """Parse an in-memory NDJSON payload (an HTTP body) with the same dirty-tolerant path as files (a byte-order
    mark is a bad line here: RFC 8259 forbids sending one over a network)."""
    if not data.endswith(b"\n"):
        data += b"\n"
    return _parse_ndjson_chunk(data, source, 0, max_line_bytes)
