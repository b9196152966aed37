"""The unit of work between ingest and validation: a raw columnar batch and its undecodable lines."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import msgspec
import polars as pl

from tunewatch.ingest.coerce import BAD_TYPE, BAD_UTF8, NOT_FINITE, records_to_raw_frame
from tunewatch.schema import RAW_SCHEMA


@dataclass(frozen=True, slots=True)
class UndecodableLine:
    """A line that is not a usable JSON object / CSV row: kept verbatim with the reason."""

    line_no: int
    raw: bytes
    reason: str  # machine-readable "field: reason", e.g. "line: invalid_json"
    detail: str = ""  # human-readable explanation (never contains the raw value)


@dataclass(slots=True)
class RawBatch:
    """Events decoded from one chunk of one source, every schema field as text (``RAW_SCHEMA``).

    ``frame`` has one row per decoded event, in arrival order. ``raw_lines`` (same length, optional) keeps each
    row's bytes as received, so that a rejected event can be quarantined verbatim; ``line_nos`` the 1-based
    line (or row) number of each row in its source. ``undecodable`` lists lines that could not be decoded.
    ``text_clean`` is a promise by the reader that no text value holds a control, bidirectional or zero-width
    character, surrounding whitespace or a decoding marker, which lets the validator skip those checks.
    """

    frame: pl.DataFrame
    source: str = ""
    line_nos: Sequence[int] | None = None
    raw_lines: Sequence[bytes] | None = None
    undecodable: list[UndecodableLine] = field(default_factory=list)
    text_clean: bool = False

    @property
    def received(self) -> int:
        """Number of events received in this batch (decoded rows + undecodable lines)."""
        return self.frame.height + len(self.undecodable)

    def raws_of(self, rows: Sequence[int]) -> list[bytes]:
        """Bytes of several decoded rows as received (re-encoded as compact JSON when the source kept none)."""
        if self.raw_lines is not None:
            return [self.raw_lines[r] for r in rows]
        if not rows:
            return []
        part = self.frame[list(rows)]
        return [msgspec.json.encode({k: v for k, v in rec.items() if v is not None}) for rec in part.to_dicts()]

    def lines_of(self, rows: Sequence[int]) -> list[int]:
        """1-based line numbers of several decoded rows."""
        if self.line_nos is not None:
            return [self.line_nos[r] for r in rows]
        return [r + 1 for r in rows]

    @classmethod
    def from_records(cls, records: Sequence[dict[str, object]], source: str = "api") -> RawBatch:
        """Build a batch from already-decoded JSON objects (HTTP ingest, the Python API)."""
        return cls(frame=records_to_raw_frame(records), source=source)


def conform(frame: pl.DataFrame) -> pl.DataFrame:
    """Return ``frame`` with exactly the ``RAW_SCHEMA`` columns as text (missing ones null, extras dropped)."""
    cols = []
    for name in RAW_SCHEMA.names():
        if name in frame.columns:
            col = frame.get_column(name)
            cols.append(col if col.dtype == pl.String else _to_text(col))
        else:
            cols.append(pl.Series(name, [None] * frame.height, dtype=pl.String))
    return pl.DataFrame(cols)


def _to_text(col: pl.Series) -> pl.Series:
    """Text form of a typed column, as it would appear in JSON (datetimes become epoch milliseconds)."""
    if col.dtype == pl.Boolean:
        return col.cast(pl.String)  # "true"/"false"
    if isinstance(col.dtype, pl.Datetime):
        return col.dt.epoch("ms").cast(pl.String)
    if col.dtype.is_float():
        # integral floats as integers ("3.0" -> "3"), others kept (and later rejected for int fields)
        as_int = col.cast(pl.Int64, strict=False)
        exact = as_int.cast(pl.Float64) == col
        text = pl.when(exact).then(as_int.cast(pl.String)).otherwise(col.cast(pl.String))
        marked = pl.when(col.is_finite() | col.is_null()).then(text).otherwise(pl.lit(NOT_FINITE))
        return pl.select(marked.alias(col.name)).to_series()
    if col.dtype.is_numeric() or col.dtype == pl.Date:
        return col.cast(pl.String)
    if col.dtype == pl.Binary:
        decoded = col.cast(pl.String, strict=False)
        bad = decoded.is_null() & col.is_not_null()
        return pl.select(pl.when(bad).then(pl.lit(BAD_UTF8)).otherwise(decoded).alias(col.name)).to_series()
    if isinstance(col.dtype, pl.List | pl.Array | pl.Struct | pl.Object):
        return pl.select(pl.when(col.is_not_null()).then(pl.lit(BAD_TYPE)).alias(col.name)).to_series()
    if isinstance(col.dtype, pl.Categorical | pl.Enum):
        return col.cast(pl.String)
    return pl.Series(col.name, [None if v is None else str(v) for v in col.to_list()], dtype=pl.String)
