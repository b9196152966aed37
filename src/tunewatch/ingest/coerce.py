"""Turn already-decoded JSON objects into a raw text frame, keeping the type information validation needs."""

from __future__ import annotations

import math
from collections.abc import Sequence

import polars as pl

from tunewatch.schema import RAW_SCHEMA

#: Marker for values whose JSON type cannot be a scalar field value (objects, arrays, NaN, huge numbers).
BAD_TYPE = "\x00bad-type"


def json_scalar_text(value: object) -> str | None:
    """Text of a JSON scalar as the NDJSON reader produces it; ``BAD_TYPE`` for objects, arrays, NaN, inf."""
    if value is None:
        return None
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return BAD_TYPE
        return str(int(value)) if value.is_integer() and abs(value) < 2**63 else repr(value)
    return BAD_TYPE


def records_to_raw_frame(records: Sequence[object]) -> pl.DataFrame:
    """Build a ``RAW_SCHEMA`` frame from decoded JSON values (non-objects yield all-null rows).

    This is the slow, per-record path: it serves small HTTP/API batches and the lines of a dirty chunk that
    the columnar reader could not take. Non-object records are represented by a row of nulls, which the
    validator rejects for missing required fields.
    """
    columns: dict[str, list[str | None]] = {name: [] for name in RAW_SCHEMA.names()}
    for rec in records:
        obj = rec if isinstance(rec, dict) else {}
        for name, values in columns.items():
            values.append(json_scalar_text(obj.get(name)))
    return pl.DataFrame(columns, schema=RAW_SCHEMA)
