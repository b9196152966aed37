"""Other ways in: Python records, Polars frames and NDJSON bytes get the same rules and the same accounting."""

from __future__ import annotations

import math

import polars as pl

from tests.validate.corpus import NOW_MS, event
from tunewatch.validate import EnterpriseDataValidator, describe


def _validator() -> EnterpriseDataValidator:
    return EnterpriseDataValidator(clock=lambda: NOW_MS / 1000)


def test_records_with_wrong_types_and_non_objects() -> None:
    records: list[object] = [
        event(event_id="ok"),
        event(event_id="nan", ms_played=math.nan),
        event(event_id="obj", user_id={"a": 1}, offline=True),
        event(event_id="boolid", cdn=True),
        42,
    ]
    result = _validator().validate(records)  # type: ignore[arg-type]
    assert (result.received, result.accepted, result.rejected_count) == (5, 1, 4)
    assert result.rejected["reasons"].to_list() == [
        ["ms_played: not_finite"],
        ["user_id: bad_type"],
        ["cdn: bad_type"],
        ["line: not_object"],
    ]
    assert result.rejected["line_no"].to_list() == [2, 3, 4, 5]


def test_typed_dataframe_input() -> None:
    frame = pl.DataFrame([event(event_id="ok"), event(event_id="inf", startup_ms=None)]).with_columns(
        pl.Series("startup_ms", [300.0, math.inf]),
        pl.Series("session_id", [{"x": 1}, None], dtype=pl.Struct({"x": pl.Int64})),
    )
    result = _validator().validate(frame)
    assert result.rejected["reasons"].to_list() == [["session_id: bad_type"], ["startup_ms: not_finite"]]
    assert result.rejected["event_id"].to_list() == ["ok", "inf"]


def test_messages_are_human_readable() -> None:
    result = _validator().validate(b'{"event_id":"x"}\nnot json\n')
    assert describe("ms_played: not_finite") == "ms_played is NaN or infinity"
    lines = result.messages()
    assert lines[0].startswith("bytes:1: ts is required but missing")
    assert lines[1] == "bytes:2: line is not valid JSON"
