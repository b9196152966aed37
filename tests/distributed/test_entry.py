"""Stream-entry codec, partitioning and key layout (no server needed)."""

from __future__ import annotations

import polars as pl
import pytest

from tests.distributed.helpers import simulated_batches
from tunewatch.distributed.entry import PLAIN, ZSTD, decode_entry, encode_entry
from tunewatch.distributed.keys import KeyLayout
from tunewatch.distributed.partition import partition_of_market, partitions
from tunewatch.errors import InputError
from tunewatch.ingest.batch import RawBatch, UndecodableLine, conform


def test_entry_round_trip_keeps_rows_and_undecodable_lines() -> None:
    frame = next(simulated_batches()).frame.head(500)
    bad = [UndecodableLine(7, b"{not json", "line: invalid_json", "unexpected character")]
    fields = encode_entry(RawBatch(frame=frame, source="s.ndjson", undecodable=bad))
    assert fields["d"][:1] == ZSTD and fields["n"] == b"501"
    back = decode_entry(fields, "1-0")
    assert back.frame.equals(frame) and back.source == "s.ndjson" and back.undecodable == bad
    assert back.received == 501


def test_small_entry_is_not_compressed_and_decodes_with_str_keys() -> None:
    frame = conform(pl.DataFrame({"event_id": ["a"], "market": ["SE"]}))
    fields = encode_entry(RawBatch(frame=frame))
    assert fields["d"][:1] == PLAIN
    assert decode_entry({"d": fields["d"]}).frame["event_id"].to_list() == ["a"]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [(b"", "missing or empty"), (b"\x07abc", "unknown header"), (PLAIN + b"\xc1", "not a tunewatch batch"),
     (ZSTD + b"garbage", "not a tunewatch batch")],
)  # fmt: skip
def test_foreign_payload_raises_input_error_naming_the_entry(payload: bytes, reason: str) -> None:
    with pytest.raises(InputError, match=rf"stream entry 5-1: .*{reason}"):
        decode_entry({b"d": payload}, "5-1")


def test_partitioning_is_stable_and_keeps_a_market_together() -> None:
    frame = pl.concat([b.frame for b in simulated_batches()])
    parts = partitions(frame, 4)
    per_market = pl.DataFrame({"market": frame["market"], "p": parts}).group_by("market").agg(pl.col("p").n_unique())
    assert per_market["p"].max() == 1  # a market never spans partitions
    assert parts.n_unique() > 1
    assert partition_of_market("BR", 4) == 116592544 % 4 == 0 == partitions(pl.DataFrame({"market": ["BR"]}), 4)[0]
    with pytest.raises(ValueError, match="n_partitions"):
        partition_of_market("BR", 0)


def test_partition_keys_share_one_hash_tag() -> None:
    k = KeyLayout("tw")
    tagged = [k.stream(1), k.done(1, "g", "1-0"), k.accounting(1, "g"), k.checkpoint(1, "g")]
    assert all("{p1}" in key for key in tagged)
    with pytest.raises(ValueError, match="prefix"):
        KeyLayout("bad prefix")
