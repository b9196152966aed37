"""Ingest: read events from files (NDJSON, CSV, Parquet; optionally gzip/zstd compressed) in bounded chunks.

Owns turning bytes into raw columnar batches (every schema field as text) plus the lines that could not be
decoded at all. It imports only :mod:`tunewatch.schema` and :mod:`tunewatch.errors`.
"""

from tunewatch.ingest.batch import RawBatch, UndecodableLine
from tunewatch.ingest.readers import detect_format, read_events

__all__ = ["RawBatch", "UndecodableLine", "detect_format", "read_events"]
