"""Compiled aggregation: every dimension set of a close from one shared encoding of its events.

The events are encoded once — window index, dense integer codes per dimension field, the weight matrix, the
startup bucket order and the (window, user) order — and each dimension set is then a linear pass of
:func:`tunewatch.process.kernel.aggregate_groups` over integer arrays, instead of a hash group-by over the
raw events with per-group quantile lookups. Results equal :func:`tunewatch.process.reference.aggregate_reference`
(integer-valued sums and every count, distinct count and quantile exactly; float sums of non-integer weights
such as ``stream_revenue_micros`` up to summation order, i.e. within a few ulp).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from tunewatch.process.dimensions import DimensionSet
from tunewatch.process.kernel import aggregate_groups, dense_codes, set_group_ids
from tunewatch.process.sketches import bucket_value
from tunewatch.process.weights import QUANTILES, SUMS

WINDOW_MS = 60_000


def _codes(events: pl.DataFrame, fields: list[str]) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Dense code per value of each field (−1 for null) and each field's number of values."""
    if not fields:
        return {}, {}
    physical = events.select(pl.col(f).cast(pl.Categorical).to_physical().cast(pl.Int64).fill_null(-1) for f in fields)
    codes: dict[str, np.ndarray] = {}
    cards: dict[str, int] = {}
    for f in fields:
        codes[f], cards[f] = dense_codes(physical.get_column(f).to_numpy())
    return codes, cards


def _user_runs(events: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Rows ordered by user hash and, per position, the number of its run of equal hash (its listener)."""
    users = events.get_column("user_hash").to_numpy()
    order = np.argsort(users)
    ordered = users[order]
    change = np.zeros(ordered.shape[0], dtype=np.int64)
    change[1:] = ordered[1:] != ordered[:-1]
    return order.astype(np.int64), np.cumsum(change)


def aggregate_compiled(events: pl.DataFrame, dimension_sets: tuple[DimensionSet, ...]) -> list[pl.DataFrame]:
    """Sums, exact distinct listeners and startup quantiles per (window, series) of every dimension set.

    ``events`` are the derived, heavy-hitter-mapped events of the closing windows (dimension values as
    strings). Returns one frame holding every set's rows: ``window_start``, ``dimset``, the dimension fields
    (null outside the set), the sums, ``unique_listeners`` and the quantiles — the columns of the reference path.
    """
    if events.is_empty():
        return []
    window = events.get_column("window_start").to_numpy()
    w0 = int(window.min())
    window_idx = (window - w0) // WINDOW_MS
    n_windows = int(window_idx.max()) + 1
    fields = list(dict.fromkeys(f for d in dimension_sets for f in d.fields))
    codes, cards = _codes(events, fields)
    code_matrix = np.stack([codes[f] for f in fields], axis=1) if fields else np.zeros((len(window), 0), np.int64)
    card_array = np.array([cards[f] for f in fields], dtype=np.int64)
    values = np.ascontiguousarray(events.select(pl.col(c).cast(pl.Float64).fill_null(0.0) for c in SUMS).to_numpy())
    bucket = events.get_column("q_bucket").fill_null(-1).cast(pl.Int64).to_numpy()
    narrow = bucket.astype(np.int16) if bucket.shape[0] and int(bucket.max()) < 2**15 else bucket
    bucket_order = np.argsort(narrow, kind="stable")  # a radix sort for 16-bit keys (log buckets: a few hundred)
    bucket_order = bucket_order[int(np.count_nonzero(bucket < 0)) :]
    user_order, user_run = _user_runs(events)
    qs = np.array(list(QUANTILES.values()), dtype=np.float64)

    firsts: list[np.ndarray] = []
    sums: list[np.ndarray] = []
    distinct: list[np.ndarray] = []
    qbuckets: list[np.ndarray] = []
    for d in dimension_sets:
        gid, first = set_group_ids(window_idx, n_windows, code_matrix, card_array, [fields.index(f) for f in d.fields])
        s, u, q = aggregate_groups(gid, first.shape[0], values, bucket, bucket_order, user_order, user_run, qs)
        firsts.append(first)
        sums.append(s)
        distinct.append(u)
        qbuckets.append(q)
    sizes = [f.shape[0] for f in firsts]
    first_all = np.concatenate(firsts)
    set_of_row = np.repeat(np.arange(len(dimension_sets)), sizes)
    columns: dict[str, pl.Series] = {
        "window_start": pl.Series("window_start", window[first_all]),
        "dimset": pl.Series("dimset", [d.name for d in dimension_sets]).gather(set_of_row),
    }
    for f in fields:
        in_set = np.array([f in d.fields for d in dimension_sets])[set_of_row]
        # a null row index gathers a null: the strings are copied once, only where the field is in the set
        rows = pl.Series(np.where(in_set, first_all, 0), dtype=pl.Int64).set(pl.Series(~in_set), None)
        columns[f] = events.get_column(f).gather(rows)
    sum_columns = np.ascontiguousarray(np.concatenate(sums).T)  # one column per row: contiguous, no strided copy
    columns.update({c: pl.Series(c, sum_columns[j]) for j, c in enumerate(SUMS)})
    columns["unique_listeners"] = pl.Series("unique_listeners", np.concatenate(distinct))
    bucket_columns = np.ascontiguousarray(np.concatenate(qbuckets).T)
    columns.update({name: pl.Series(name, bucket_columns[j]) for j, name in enumerate(QUANTILES)})
    frame = pl.DataFrame(columns).with_columns(
        bucket_value(pl.when(pl.col(name) >= 0).then(pl.col(name))).alias(name) for name in QUANTILES
    )
    return [frame]
