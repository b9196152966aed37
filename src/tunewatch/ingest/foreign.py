"""Event tables from other libraries, as Polars frames: pandas DataFrames and Arrow streams.

* a pandas DataFrame: with pyarrow installed, Polars converts every column type; without it, each column is
  converted here — numbers (pandas' ``NaN``/``NA`` meaning *missing* become nulls), datetimes (to epoch
  milliseconds through Polars datetimes) and everything else as Python objects (strings stay strings; values
  of another type are rejected later as ``bad_type``);
* any object with ``__arrow_c_stream__`` (the Arrow PyCapsule interface: pyarrow tables and record batch
  readers, DuckDB and Polars results, pandas with pyarrow, …).

Nothing here reads pandas unless it is given a pandas object: pandas is not a dependency.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from tunewatch.errors import InputError


def is_pandas_frame(obj: object) -> bool:
    """Whether ``obj`` is a ``pandas.DataFrame`` (checked by type, without importing pandas)."""
    return any(cls.__module__.split(".")[0] == "pandas" and cls.__name__ == "DataFrame" for cls in type(obj).__mro__)


def has_arrow_stream(obj: object) -> bool:
    """Whether ``obj`` exports an Arrow C stream (``__arrow_c_stream__``)."""
    return callable(getattr(type(obj), "__arrow_c_stream__", None))


def from_pandas(frame: Any) -> pl.DataFrame:
    """A Polars frame of a pandas DataFrame (column names as text)."""
    try:
        return pl.from_pandas(frame, nan_to_null=True)
    except ImportError:  # no pyarrow: only simple numpy-backed columns convert in Polars; the others here
        pass
    return pl.DataFrame([_series(str(name), column) for name, column in frame.items()])


def _series(name: str, column: Any) -> pl.Series:
    kind = getattr(column.dtype, "kind", "O")
    if kind == "M":
        values = column.dt.tz_convert("UTC").dt.tz_localize(None) if column.dt.tz is not None else column
        return pl.Series(name, values.to_numpy(dtype="datetime64[ms]"))
    if kind in "iuf":
        if column.hasnans:
            return pl.Series(name, column.to_numpy(dtype="float64", na_value=np.nan), nan_to_null=True)
        return pl.Series(name, column.to_numpy())
    return pl.Series(name, column.to_numpy(dtype=object, na_value=None), strict=False)


def from_arrow_stream(obj: Any) -> pl.DataFrame:
    """A Polars frame of an object exporting an Arrow C stream; :class:`InputError` if it cannot be read."""
    try:
        return pl.DataFrame(obj)
    except (TypeError, ValueError, pl.exceptions.PolarsError) as exc:
        raise InputError(
            f"events: {type(obj).__name__} has __arrow_c_stream__ but its stream cannot be read ({type(exc).__name__})"
        ) from None
