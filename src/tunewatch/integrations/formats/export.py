"""Write events, alerts and metric points as NDJSON, CSV or Parquet (chosen by the file's extension).

Alerts (the objects of ``--alerts-out``: ``status``, ``labels``, ``annotations``, ``startsAt``, ``endsAt``,
``fingerprint``) are flattened for spreadsheets: one column per label (``label_<name>``) and annotation
(``annotation_<name>``). In CSV, columns that stay nested (lists, structs) are written as JSON text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final, Literal

import polars as pl

from tunewatch.errors import InputError

Format = Literal["ndjson", "csv", "parquet"]
_SUFFIXES: Final[dict[str, Format]] = {
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_ALERT_FIELDS: Final = ("status", "startsAt", "endsAt", "fingerprint", "generatorURL")


def format_of(path: Path) -> Format:
    """The format named by ``path``'s extension; :class:`InputError` for another extension."""
    fmt = _SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise InputError(f"{path}: unknown output format {path.suffix!r}; use .ndjson, .csv or .parquet")
    return fmt


def _flat_for_csv(frame: pl.DataFrame) -> pl.DataFrame:
    nested = [c for c, t in frame.schema.items() if isinstance(t, (pl.List, pl.Struct, pl.Array))]
    if not nested:
        return frame
    return frame.with_columns(pl.col(c).map_batches(_json_text, return_dtype=pl.String) for c in nested)


def _json_text(series: pl.Series) -> pl.Series:
    return pl.Series(series.name, [None if v is None else json.dumps(v) for v in series.to_list()], dtype=pl.String)


def export_frame(frame: pl.DataFrame, path: Path) -> int:
    """Write ``frame`` (events, metric points, …) to ``path`` in the format of its extension; returns rows."""
    fmt = format_of(path)
    if fmt == "parquet":
        frame.write_parquet(path)
    elif fmt == "csv":
        _flat_for_csv(frame).write_csv(path)
    else:
        frame.write_ndjson(path)
    return frame.height


def write_events(frame: pl.DataFrame, path: Path) -> int:
    """Write imported events; columns that are null throughout are left out (optional §2 fields)."""
    keep = [c for c in frame.columns if frame[c].null_count() < frame.height or frame.height == 0]
    return export_frame(frame.select(keep), path)


def read_alerts(path: Path) -> list[dict[str, Any]]:
    """Alert objects of an ``--alerts-out`` NDJSON file (blank lines ignored)."""
    alerts = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            alert = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{number}: not JSON: {exc.msg}") from None
        if not isinstance(alert, dict) or not isinstance(alert.get("labels"), dict):
            raise InputError(f"{path}:{number}: not an alert object (needs 'labels')")
        alerts.append(alert)
    return alerts


def alerts_frame(alerts: Iterable[Mapping[str, Any]]) -> pl.DataFrame:
    """One row per alert: its fields, ``label_<name>`` and ``annotation_<name>`` columns (all text)."""
    rows = []
    for alert in alerts:  # alerts are few (state changes), not events
        row = {name: _text(alert.get(name)) for name in _ALERT_FIELDS}
        row.update({f"label_{k}": _text(v) for k, v in (alert.get("labels") or {}).items()})
        row.update({f"annotation_{k}": _text(v) for k, v in (alert.get("annotations") or {}).items()})
        rows.append(row)
    if not rows:
        return pl.DataFrame(schema={name: pl.String for name in _ALERT_FIELDS})
    columns = list(dict.fromkeys(c for row in rows for c in row))
    return pl.DataFrame([{c: row.get(c) for c in columns} for row in rows], schema={c: pl.String for c in columns})


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value)


def export_alerts(alerts: Iterable[Mapping[str, Any]], path: Path) -> int:
    """Write alerts flattened by :func:`alerts_frame` to ``path`` (CSV, Parquet or NDJSON); returns rows."""
    return export_frame(alerts_frame(alerts), path)
