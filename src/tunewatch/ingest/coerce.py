"""Turn already-decoded JSON values into raw text, keeping the type information validation needs.

A value whose JSON type can never be a field value is replaced by a *marker*: a string starting with NUL, which
no valid text value can hold (NUL is a control character), so the validator recognises it cheaply.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

import polars as pl

from tunewatch.schema import FIELD_BY_NAME, RAW_SCHEMA, Kind

#: Marker for values whose JSON type cannot be a scalar field value (objects, arrays, booleans in text/int fields).
BAD_TYPE: Final = "\x00bad-type"
#: Marker for NaN / Infinity (accepted by lenient JSON writers, never valid).
NOT_FINITE: Final = "\x00not-finite"
#: Marker for a string value that is not valid UTF-8 (or holds a lone surrogate escape).
BAD_UTF8: Final = "\x00bad-utf8"
MARKERS: Final = (BAD_TYPE, NOT_FINITE, BAD_UTF8)


def normalise_number(token: str) -> str:
    """Text of a JSON number as the columnar reader writes it: integral floats as integers (``3.0`` → ``3``)."""
    if token.lstrip("-").isdigit():
        return token
    try:
        value = float(token)
    except ValueError:
        return token
    if math.isfinite(value) and value.is_integer() and abs(value) < 2**63:
        return str(int(value))
    return token


def json_scalar_text(value: object, *, boolean: bool = False) -> str | None:
    """Text of a decoded JSON value; a marker for objects, arrays, NaN/Infinity and (unless ``boolean``) bools."""
    if value is None:
        return None
    if value is True or value is False:
        return ("true" if value else "false") if boolean else BAD_TYPE
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return NOT_FINITE
        return str(int(value)) if value.is_integer() and abs(value) < 2**63 else repr(value)
    return BAD_TYPE


def records_to_raw_frame(records: Sequence[object]) -> pl.DataFrame:
    """Build a ``RAW_SCHEMA`` frame from decoded JSON values (non-objects yield all-null rows).

    This is the slow, per-record path: it serves small HTTP/API batches and the lines of a dirty chunk that
    the columnar reader could not take. Non-object records are represented by a row of nulls, which the
    validator rejects for missing required fields.
    """
    columns: dict[str, list[str | None]] = {name: [] for name in RAW_SCHEMA.names()}
    flags = {name: FIELD_BY_NAME[name].kind is Kind.BOOL for name in columns}
    for rec in records:
        obj = rec if isinstance(rec, dict) else {}
        for name, values in columns.items():
            values.append(json_scalar_text(obj.get(name), boolean=flags[name]))
    return pl.DataFrame(columns, schema=RAW_SCHEMA)
