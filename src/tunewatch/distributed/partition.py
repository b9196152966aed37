"""Partitioning by market: a stable hash of the market code modulo the number of partitions.

A market's events always land in the same partition, so every series of a market (market, market×cdn,
market×platform) is aggregated and detected by one worker. The hash is CRC-32 (stable across processes and
machines, unlike Python's ``hash``), computed once per distinct market and mapped over the column.

>>> partition_of_market("BR", 4) == partition_of_market("BR", 4)
True
>>> import polars as pl
>>> partitions(pl.DataFrame({"market": ["BR", None, "BR"]}), 4).to_list()[1]
0
"""

from __future__ import annotations

import zlib

import polars as pl


def partition_of_market(market: str | None, n_partitions: int) -> int:
    """Partition of one market code (events without a market go to partition 0; they will be rejected there)."""
    if n_partitions <= 0:
        raise ValueError(f"n_partitions: must be positive, got {n_partitions}")
    if market is None:
        return 0
    return zlib.crc32(market.encode()) % n_partitions


def partitions(frame: pl.DataFrame, n_partitions: int) -> pl.Series:
    """Partition number (UInt32) of every row of ``frame``, from its ``market`` column."""
    markets = frame.get_column("market") if "market" in frame.columns else pl.Series([None] * frame.height)
    markets = markets.cast(pl.String)
    distinct = markets.unique().drop_nulls().to_list()
    mapping = {m: partition_of_market(m, n_partitions) for m in distinct}
    return markets.replace_strict(mapping, default=0, return_dtype=pl.UInt32).alias("partition")
