"""Codec: round trips of the value types the pipeline caches; foreign or corrupt bytes are a logged miss."""

from __future__ import annotations

import datetime as dt
import logging

import msgpack
import numpy as np
import pytest
import zstandard

from tunewatch.cache.codec import NEGATIVE, PLAIN, ZSTD, Codec, CodecError


def test_round_trip_of_pipeline_values() -> None:
    codec = Codec()
    value = {
        "window_start": [1_699_999_980_000, 1_700_000_040_000],
        "skip_rate": [0.25, None],
        "market": ["BR", None],
        "raw": b"\x00\x01",
        "nested": {"a": [1, 2, {"b": True}], 7: "int key"},
        "scalar": np.float32(1.5),
        "count": np.int64(42),
    }
    out = Codec().decode(codec.encode(value))
    assert out["window_start"] == value["window_start"]
    assert out["skip_rate"] == [0.25, None]
    assert out["market"] == ["BR", None]
    assert out["raw"] == b"\x00\x01"
    assert out["nested"] == {"a": [1, 2, {"b": True}], 7: "int key"}
    assert out["scalar"] == 1.5 and out["count"] == 42


@pytest.mark.parametrize(
    "array",
    [
        np.arange(10, dtype=np.int64),
        np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4),
        np.array([True, False]),
        np.array(["2026-01-05T00:00", "2026-01-05T00:01"], dtype="datetime64[ms]"),
        np.asfortranarray(np.arange(6, dtype=np.uint16).reshape(2, 3)),
        np.zeros((0, 3)),
    ],
)
def test_numpy_arrays_keep_dtype_shape_and_are_writable(array: np.ndarray) -> None:
    out = Codec(compress_threshold=0).decode(Codec(compress_threshold=0).encode({"a": array}))["a"]
    assert out.dtype == array.dtype and out.shape == array.shape
    np.testing.assert_array_equal(out, array)
    assert out.flags.writeable


def test_datetimes_keep_their_timezone_or_lack_of_it() -> None:
    aware = dt.datetime(2026, 1, 5, 12, 30, 1, 250, tzinfo=dt.timezone(dt.timedelta(hours=-3)))
    naive = dt.datetime(2026, 1, 5, 12, 30)
    day = dt.date(2026, 1, 5)
    assert Codec().decode(Codec().encode([aware, naive, day])) == [aware, naive, day]


def test_negative_marker_round_trips_as_the_same_object() -> None:
    assert Codec().decode(Codec().encode(NEGATIVE)) is NEGATIVE


def test_compression_only_above_threshold_and_only_when_enabled() -> None:
    small, big = {"a": 1}, {"market": ["BR", "MX", None] * 700, "plays": [12.0] * 2000}
    codec = Codec(compress_threshold=1024)
    assert codec.encode(small)[:1] == PLAIN
    blob = codec.encode(big)
    assert blob[:1] == ZSTD
    assert len(blob) < len(msgpack.packb(big)) / 2
    assert Codec(compression=False).encode(big)[:1] == PLAIN
    assert codec.decode(blob) == big


def test_unserialisable_values_raise_codec_error_naming_the_type() -> None:
    with pytest.raises(CodecError, match="object"):
        Codec().encode(np.array([object()], dtype=object))
    with pytest.raises(CodecError, match="set"):
        Codec().encode({"s": {1, 2}})


def _corrupt_values() -> list[bytes]:
    good = Codec(compress_threshold=0).encode({"rows": list(range(100))})
    huge = zstandard.ZstdCompressor().compress(b"\x00" * 1000)
    return [
        b"",
        b"plain text written by someone else",
        b'{"json": true}',
        good[:-10],  # truncated zstd frame
        PLAIN + b"\xc1",  # msgpack's never-used byte
        PLAIN + msgpack.packb([1, 2]) + b"trailing",
        PLAIN + msgpack.packb(msgpack.ExtType(99, b"x")),  # unknown extension
        PLAIN + msgpack.packb(msgpack.ExtType(1, b"\x93garbage")),  # broken ndarray payload
        ZSTD + b"\x28\xb5\x2f\xfd garbage",
        ZSTD + huge,  # not a msgpack body after decompression
    ]


@pytest.mark.parametrize("data", _corrupt_values())
def test_corrupt_or_foreign_bytes_are_a_miss_and_one_logged_error(
    data: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    codec = Codec()
    with pytest.raises(CodecError):
        codec.decode(data)
    with caplog.at_level(logging.ERROR, logger="tunewatch.cache.codec"):
        assert codec.try_decode(data, key="tw:v1:k") == (False, None)
    assert len(caplog.records) == 1 and "tw:v1:k" in caplog.records[0].getMessage()


def test_declared_decompressed_size_is_bounded() -> None:
    blob = Codec(compress_threshold=0).encode(b"x" * 10_000)
    assert Codec(max_value_bytes=100).try_decode(blob, key="k") == (False, None)
