"""The Python API takes pandas DataFrames and Arrow streams as it takes lists of dicts; other types are refused."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from tests.conftest import BASE_MS, make_play
from tunewatch import EnterpriseDataValidator
from tunewatch.errors import InputError

pd = pytest.importorskip("pandas")


def _events() -> list[dict[str, Any]]:
    events = [make_play(i, BASE_MS + i * 1000) for i in range(100)]
    events[3]["market"] = "QQ"  # one bad event
    events[4] = {**events[5]}  # one duplicate
    events[7].pop("startup_ms")  # an optional field missing: NaN in a pandas int column
    events[8]["ms_played"] = 10**9  # a value over the track duration
    return events


def _validated(events: Any) -> tuple[int, int, int, int, pl.DataFrame]:
    result = EnterpriseDataValidator(clock=lambda: BASE_MS / 1000 + 600).validate(events)
    return result.received, result.accepted, result.rejected_count, result.duplicates, result.valid


def _counts(events: Any) -> tuple[int, int, int, int]:
    return _validated(events)[:4]


class ArrowStream:
    """Only the Arrow PyCapsule stream interface (as a DuckDB or pyarrow result offers it), here from Polars."""

    def __init__(self, frame: pl.DataFrame) -> None:
        self._frame = frame

    def __arrow_c_stream__(self, requested_schema: object = None) -> object:
        return self._frame.__arrow_c_stream__(requested_schema)


def test_pandas_frame_is_read_like_the_same_events_as_dicts() -> None:
    events = _events()
    expected = _validated(events)
    assert expected[:4] == (100, 97, 2, 1)
    frame = pd.DataFrame(events)
    assert frame["startup_ms"].dtype.kind == "f"  # pandas made the int column float to hold the missing value
    got = _validated(frame)
    assert got[:4] == expected[:4]
    assert got[4].equals(expected[4])


def test_pandas_datetimes_and_nullable_types() -> None:
    events = _events()[:10]
    frame = pd.DataFrame(events)
    frame["ts"] = pd.to_datetime(frame["ts"], unit="ms", utc=True)
    frame["bitrate_kbps"] = frame["bitrate_kbps"].astype("Int64")
    frame.loc[2, "bitrate_kbps"] = pd.NA
    received, accepted, rejected, duplicates, valid = _validated(frame)
    assert (received, accepted, rejected, duplicates) == (10, 7, 2, 1)
    assert valid.get_column("ts").dt.epoch("ms").to_list()[0] == BASE_MS


def test_arrow_c_stream_objects() -> None:
    events = _events()
    assert _counts(ArrowStream(pl.DataFrame(events))) == _counts(events)


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ('{"event_id": "a"}\n', "got a str"),
        (make_play(1, BASE_MS), "got one event"),
        (42, "cannot validate a int"),
        (3.5, "cannot validate a float"),
    ],
)
def test_other_types_are_refused_with_what_is_accepted(value: Any, said: str) -> None:
    with pytest.raises(InputError) as info:
        EnterpriseDataValidator().validate(value)
    message = str(info.value)
    assert said in message and "pandas DataFrame" in message and "__arrow_c_stream__" in message
