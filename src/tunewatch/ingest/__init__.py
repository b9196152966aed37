"""Ingest: read events from files (NDJSON, CSV, Parquet; optionally gzip/zstd compressed) in bounded chunks.

Owns turning bytes into raw columnar batches (schema fields as text, or ints and bools already typed where the
NDJSON fast path could read them so) plus the lines that could not be decoded at all, each with its reason.
Modules: ``readers`` (files, formats, compression), ``ndjson`` (chunk decoding), ``jsonline`` (exact decoding of
one line), ``screen`` (byte-level tests), ``coerce`` (JSON values to text and markers), ``batch``.
It imports only :mod:`tunewatch.schema` and :mod:`tunewatch.errors`.
"""

from tunewatch.ingest.batch import RawBatch, UndecodableLine
from tunewatch.ingest.readers import detect_format, parse_ndjson_bytes, read_events

__all__ = ["RawBatch", "UndecodableLine", "detect_format", "parse_ndjson_bytes", "read_events"]
