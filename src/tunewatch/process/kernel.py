"""Compiled kernels of the window aggregation: one linear pass over a close's events per dimension set.

A dimension set's groups are numbered densely (:func:`group_ids`); :func:`aggregate_groups` then computes, for
every group at once and with no sort per group,

* the **sums** of the weight columns, in row order;
* the **exact distinct listeners**: the events are visited in user order, so each listener's events form one
  run, and a group counts a run once (it remembers the last run it counted);
* the **startup-time quantiles** (lower interpolation over the group's log buckets, the same rank rule as
  :func:`tunewatch.process.sketches.sorted_bucket_quantile`): a counting sort by group of the events taken in
  bucket order leaves every group's buckets sorted, so a quantile is one positional lookup.

Every array is indexed by row or by group id; Numba compiles the loops (cached on disk).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

import numba
import numpy as np

#: Largest mixed-radix key range relabelled through a direct lookup table; wider keys are compacted by sorting.
_DENSE_LIMIT: Final = 1 << 20

IntArray = np.ndarray
FloatArray = np.ndarray


@numba.njit(cache=True, nogil=True)
def _relabel(key: IntArray, card: int) -> tuple[IntArray, IntArray]:  # pragma: no cover - compiled
    """Dense group ids in order of first appearance (−1 stays −1) and each group's first row."""
    table = np.full(card, -1, dtype=np.int64)
    gid = np.empty(key.shape[0], dtype=np.int64)
    first = np.empty(key.shape[0], dtype=np.int64)
    n_groups = 0
    for i in range(key.shape[0]):
        k = key[i]
        if k < 0:
            gid[i] = -1
            continue
        g = table[k]
        if g < 0:
            g = n_groups
            table[k] = g
            first[g] = i
            n_groups += 1
        gid[i] = g
    return gid, first[:n_groups].copy()


def _compact(key: IntArray) -> tuple[IntArray, int]:
    """Renumber non-negative keys to 0..m-1 (order-preserving); −1 stays −1."""
    valid = key >= 0
    uniq, inverse = np.unique(key[valid], return_inverse=True)
    out = np.full(key.shape[0], -1, dtype=np.int64)
    out[valid] = inverse
    return out, max(1, int(uniq.shape[0]))


def dense_codes(codes: IntArray) -> tuple[IntArray, int]:
    """Renumber non-negative codes (e.g. categorical ids) densely in order of first appearance; −1 stays −1."""
    codes = codes.astype(np.int64, copy=False)
    top = int(codes.max()) + 1 if codes.shape[0] else 1
    if top > _DENSE_LIMIT:
        return _compact(codes)
    gid, first = _relabel(codes, max(1, top))
    return gid, max(1, int(first.shape[0]))


def group_ids(codes: Sequence[IntArray], cards: Sequence[int]) -> tuple[IntArray, IntArray]:
    """Group id of every row from its key columns' codes (``-1`` = null: the row is in no group).

    ``codes[j]`` holds values in ``0..cards[j]-1`` or −1. Returns ``(gid, first_row)``: group ids numbered in
    order of first appearance, −1 for rows with a null key, and the first row of each group.
    """
    n = codes[0].shape[0]
    key = np.zeros(n, dtype=np.int64)
    card = 1
    for column, c in zip(codes, cards, strict=True):
        column = column.astype(np.int64, copy=False)
        key = np.where((key >= 0) & (column >= 0), key * c + column, -1)
        card *= max(1, c)
        if card > _DENSE_LIMIT:
            key, card = _compact(key)
    return _relabel(key, card)


@numba.njit(cache=True, nogil=True)
def _keyed_group_ids(  # pragma: no cover - compiled
    window_idx: IntArray, codes: IntArray, cards: IntArray, fields: IntArray, card: int
) -> tuple[IntArray, IntArray]:
    """:func:`group_ids` for key ranges up to ``card`` (a lookup table): the keys in one pass, then relabelled."""
    n = window_idx.shape[0]
    key = np.empty(n, dtype=np.int64)
    for i in range(n):
        k = window_idx[i]
        for f in fields:
            c = codes[i, f]
            if c < 0:
                k = -1
                break
            k = k * cards[f] + c
        key[i] = k
    return _relabel(key, card)


def set_group_ids(
    window_idx: IntArray, n_windows: int, codes: IntArray, cards: IntArray, fields: Sequence[int]
) -> tuple[IntArray, IntArray]:
    """Group ids of one dimension set: ``codes`` holds every field's codes (rows x fields, row-major, −1 = null),
    ``fields`` the columns of the set's fields. Same result as :func:`group_ids` on those columns."""
    card = n_windows
    for f in fields:
        card *= max(1, int(cards[f]))
    if card <= _DENSE_LIMIT:
        return _keyed_group_ids(window_idx, codes, cards, np.asarray(fields, dtype=np.int64), max(1, card))
    return group_ids([window_idx, *(codes[:, f] for f in fields)], [n_windows, *(int(cards[f]) for f in fields)])


@numba.njit(cache=True, nogil=True)
def aggregate_groups(  # pragma: no cover - compiled
    gid: IntArray,
    n_groups: int,
    values: FloatArray,
    bucket: IntArray,
    bucket_order: IntArray,
    user_order: IntArray,
    user_run: IntArray,
    qs: FloatArray,
) -> tuple[FloatArray, FloatArray, IntArray]:
    """Sums, distinct listeners and quantile buckets of every group.

    ``values`` (rows x weights, row-major) are summed per group in row order. ``bucket`` is each row's
    startup bucket (−1 = none); ``bucket_order`` lists the rows with a bucket in ascending bucket order.
    ``user_order`` lists all rows with each listener's rows together and ``user_run[p]`` numbers the listener
    of position ``p`` (group ids include the window, so a group meets a listener's rows of its own window only).
    Returns ``(sums, distinct, quantile_buckets)``, the latter −1 for a group without buckets.
    """
    n = gid.shape[0]
    k = values.shape[1]
    sums = np.zeros((n_groups, k), dtype=np.float64)
    counts = np.zeros(n_groups, dtype=np.int64)
    for i in range(n):
        g = gid[i]
        if g < 0:
            continue
        for j in range(k):
            sums[g, j] += values[i, j]
        if bucket[i] >= 0:
            counts[g] += 1

    distinct = np.zeros(n_groups, dtype=np.float64)
    last_run = np.full(n_groups, -1, dtype=np.int64)
    for p in range(user_order.shape[0]):
        g = gid[user_order[p]]
        if g >= 0 and last_run[g] != user_run[p]:
            last_run[g] = user_run[p]
            distinct[g] += 1.0

    start = np.zeros(n_groups + 1, dtype=np.int64)
    for g in range(n_groups):
        start[g + 1] = start[g] + counts[g]
    fill = start[:-1].copy()
    ordered = np.empty(start[n_groups], dtype=np.int64)
    for p in range(bucket_order.shape[0]):
        i = bucket_order[p]
        g = gid[i]
        if g >= 0:
            ordered[fill[g]] = bucket[i]
            fill[g] += 1
    quantile_buckets = np.full((n_groups, qs.shape[0]), -1, dtype=np.int64)
    for g in range(n_groups):
        m = counts[g]
        if m == 0:
            continue
        for j in range(qs.shape[0]):
            rank = math.floor(float(m - 1) * qs[j])
            quantile_buckets[g, j] = ordered[start[g] + rank]
    return sums, distinct, quantile_buckets
