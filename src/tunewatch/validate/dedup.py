"""Exact duplicate detection by ``event_id`` within an event-time horizon (memory-bounded, no false positives).

Ids are looked up by a 64-bit hash: a fixed-size bitmap of hash prefixes answers "certainly new" for almost
every id in one vectorised gather; the few others are searched in sorted NumPy runs (one run per batch, merged
in a binary-counter pattern, like a tiny LSM tree), and every hash hit is confirmed by comparing the id
strings, so a distinct event is never taken for a duplicate.

:meth:`DuplicateFilter.state_dict` exports the ids inside the horizon (the id strings and their event times,
never the hashes, which are recomputed on load: the "no false positive" guarantee rests on the strings) so that
a restarted service still recognises an event sent again; see :mod:`tunewatch.pipeline.stream_state`.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import polars as pl

DEFAULT_DEDUP_HORIZON_MS = 60 * 60 * 1000
_PREFIX_BITS = 24  # 16 Mi one-byte cells: ~6 % false "maybe" at 1M remembered ids
_SHIFT = np.uint64(64 - _PREFIX_BITS)
#: layout version of :meth:`DuplicateFilter.state_dict`
STATE_VERSION: Final = 1
_MIN_STATE_RUN: Final = 1 << 16  # smaller restored runs would only be merged again at the next batch
_STATE_RUNS: Final = 8  # a restored filter holds its ids in up to this many runs, so that eviction frees them gradually


@dataclass(slots=True)
class _Run:
    """Remembered ids of some batches: ids and times in arrival order, hashes sorted with their positions."""

    hashes: npt.NDArray[np.uint64]  # sorted
    positions: npt.NDArray[np.int64]  # row in ``ids`` of each sorted hash
    ids: pl.Series
    ts: npt.NDArray[np.int64]
    newest: int = field(init=False)  # the newest time, read by every eviction check: computed once

    def __post_init__(self) -> None:
        self.newest = int(self.ts.max()) if self.ts.size else np.iinfo(np.int64).min

    def id_at(self, sorted_index: npt.NDArray[np.int64]) -> pl.Series:
        """Ids of the given sorted-hash slots."""
        return self.ids.gather(self.positions[sorted_index])


def check_state(state: Mapping[str, Any], component: str, version: int) -> None:
    """Raise ``ValueError`` naming ``component`` unless ``state`` is its export in layout ``version``."""
    found = state.get("component"), state.get("version")
    if found[0] != component:
        raise ValueError(f"{component} state: the export is of component {found[0]!r}, not {component!r}")
    if found[1] != version:
        raise ValueError(
            f"{component} state: layout version {found[1]!r} is not supported (this version of tunewatch reads "
            f"version {version}); start afresh or restore with the version that wrote it"
        )


def _hash(ids: pl.Series) -> npt.NDArray[np.uint64]:
    return ids.hash(seed=0x7E57).to_numpy()


class DuplicateFilter:
    """Remembers the ids of accepted events whose time is within ``horizon_ms`` of the watermark.

    Memory is bounded by the number of events in the horizon (plus the batches not yet merged, whose ids
    beyond the horizon are dropped at the next merge) and a fixed 16 MiB prefix bitmap. A repeat of an id
    older than the horizon is no longer recognised; such an event is normally older than the allowed lateness
    too, and rejected as late.

    >>> f = DuplicateFilter()
    >>> f.duplicate_mask(pl.Series(["a", "b", "a"])).tolist()
    [False, False, True]
    """

    def __init__(self, horizon_ms: int = DEFAULT_DEDUP_HORIZON_MS) -> None:
        self.horizon_ms = horizon_ms
        self._runs: list[_Run] = []
        self._cutoff: int | None = None
        self._maybe = np.zeros(1 << _PREFIX_BITS, dtype=np.bool_)
        self._last: tuple[npt.NDArray[np.uint64], npt.NDArray[np.intp]] | None = None

    @staticmethod
    def hash(ids: pl.Series) -> npt.NDArray[np.uint64]:
        """The 64-bit hashes the filter uses (compute once for :meth:`duplicate_mask` and :meth:`remember`)."""
        return _hash(ids)

    def duplicate_mask(self, ids: pl.Series, hashes: npt.NDArray[np.uint64] | None = None) -> npt.NDArray[np.bool_]:
        """True for ids seen before (in an earlier batch or earlier in this one), compared exactly."""
        n = len(ids)
        if n == 0:
            return np.zeros(0, dtype=bool)
        ids = ids.rename("id")
        hashes = _hash(ids) if hashes is None else hashes
        dup = np.zeros(n, dtype=bool)
        order = np.argsort(hashes)
        ranked = hashes[order]
        self._last = (hashes, order)  # reused by remember(rows=...) for the sort of the new run
        equal = ranked[1:] == ranked[:-1]
        if equal.any():  # ids sharing a hash in this batch: the later copies of an identical string repeat it
            members = np.zeros(n, dtype=bool)
            members[1:] |= equal
            members[:-1] |= equal
            rows = np.sort(order[members])
            dup[rows] = ~ids.gather(rows).is_first_distinct().to_numpy()
        if self._runs:
            maybe = np.flatnonzero(self._maybe[hashes >> _SHIFT])
            if maybe.size:
                dup[maybe] |= self._seen(ids.gather(maybe), hashes[maybe])
        return dup

    def _seen(self, ids: pl.Series, hashes: npt.NDArray[np.uint64]) -> npt.NDArray[np.bool_]:
        """Exact membership of ``ids`` among the remembered ones."""
        seen = np.zeros(len(ids), dtype=bool)
        order = np.argsort(hashes)
        query = hashes[order]  # sorted queries make the binary searches cache-friendly
        for run in self._runs:
            size = run.hashes.size
            if not size:
                continue
            left = np.searchsorted(run.hashes, query)
            at = np.minimum(left, size - 1)
            found = np.flatnonzero(run.hashes[at] == query)
            if not found.size:
                continue
            nxt = np.minimum(left[found] + 1, size - 1)
            single = (left[found] + 1 >= size) | (run.hashes[nxt] != query[found])
            hit, pos = order[found[single]], left[found[single]]
            same = (run.id_at(pos) == ids.gather(hit)).fill_null(False).to_numpy()
            seen[hit[same]] = True
            for k in found[~single]:  # a 64-bit hash collision inside the run: compare every candidate
                row, start = int(order[k]), int(left[k])
                stop = int(np.searchsorted(run.hashes, query[k], side="right"))
                seen[row] |= ids[row] in run.id_at(np.arange(start, stop)).to_list()
        return seen

    def remember(self, ids: pl.Series, ts: pl.Series, rows: npt.NDArray[np.int64] | None = None) -> None:
        """Record accepted events (their ids and event times).

        ``rows`` (ascending) says which rows of the batch last given to :meth:`duplicate_mask` these are, so that
        its hashes and their sort are reused.
        """
        if not len(ids):
            return
        times = ts.to_numpy().astype(np.int64)
        if rows is not None and self._last is not None:
            hashes_all, order_all = self._last
            keep = np.zeros(hashes_all.size, dtype=bool)
            keep[rows] = True
            new_index = np.cumsum(keep) - 1
            order = new_index[order_all[keep[order_all]]]
            hashes = hashes_all[rows]
            run = _Run(hashes[order], order.astype(np.int64), ids, times)
        else:
            hashes = _hash(ids)
            run = self._make_run(hashes, ids, times)
        self._maybe[hashes >> _SHIFT] = True
        self._runs.append(run)
        while len(self._runs) >= 2 and self._runs[-2].hashes.size <= 2 * self._runs[-1].hashes.size:
            self._merge_last_two()

    def evict(self, watermark: int | None) -> None:
        """Forget ids whose time is older than ``watermark - horizon`` (whole runs now, single ids at merges)."""
        if watermark is None:
            return
        self._cutoff = watermark - self.horizon_ms
        kept = [run for run in self._runs if run.newest >= self._cutoff]
        if len(kept) < len(self._runs):
            self._runs = kept
            self._rebuild_bitmap()

    def __len__(self) -> int:
        return sum(run.hashes.size for run in self._runs)

    # ------------------------------------------------------------------------------------------- state

    def state_dict(self) -> dict[str, Any]:
        """The remembered ids inside the horizon, as plain values and columnar data (no hashes, no pickle).

        ``ids`` is a String :class:`polars.Series` (Arrow), ``ts`` their event times (int64 ms, same order);
        ``cutoff`` is the oldest time still remembered (``watermark - horizon_ms``, None before any eviction).
        Runs are only concatenated, without a copy of the strings, and only the runs that reach past the cutoff
        are filtered: the export costs little next to writing it.
        """
        cutoff = self._cutoff
        ids: list[pl.Series] = []
        times: list[npt.NDArray[np.int64]] = []
        for run in self._runs:
            if cutoff is not None and run.ts.size and int(run.ts.min()) < cutoff:
                keep = np.flatnonzero(run.ts >= cutoff)
                ids.append(run.ids.gather(keep))
                times.append(run.ts[keep])
            else:
                ids.append(run.ids)
                times.append(run.ts)
        all_ids = pl.concat(ids, rechunk=False) if ids else pl.Series([], dtype=pl.String)
        return {
            "component": "DuplicateFilter",
            "version": STATE_VERSION,
            "horizon_ms": self.horizon_ms,
            "cutoff": cutoff,
            "ids": all_ids.rename("event_id").cast(pl.String),
            "ts": np.concatenate(times) if times else np.zeros(0, dtype=np.int64),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Replace what is remembered by a :meth:`state_dict` export (raises ``ValueError`` for another layout).

        The horizon stays this filter's own: a restored cutoff is moved by the difference of the horizons, and
        ids outside the horizon are dropped. The hashes are recomputed from the id strings.
        """
        check_state(state, "DuplicateFilter", STATE_VERSION)
        ids, ts = state["ids"], np.asarray(state["ts"])
        if not isinstance(ids, pl.Series) or ids.dtype != pl.String:
            raise ValueError(f"DuplicateFilter state: ids must be a String series, got {type(ids).__name__}")
        if ts.dtype != np.int64 or ts.shape != (len(ids),):
            raise ValueError(f"DuplicateFilter state: ts must be {len(ids)} int64 values, got {ts.dtype} {ts.shape}")
        cutoff = state["cutoff"]
        if cutoff is not None:
            cutoff = int(cutoff) + int(state["horizon_ms"]) - self.horizon_ms
            keep = np.flatnonzero(ts >= cutoff)
            if keep.size < ts.size:
                ids, ts = ids.gather(keep), ts[keep]
        self._cutoff = cutoff
        self._last = None
        self._runs = []
        if ts.size:
            # the export is in arrival order (oldest runs first): cut it, like the merge pattern's own runs, into
            # runs of halving size, so that no merge cascade follows and the older halves leave as whole runs
            halves = [ts.size - (ts.size >> k) for k in range(1, _STATE_RUNS) if ts.size >> k >= _MIN_STATE_RUN]
            bounds = sorted({0, *halves, ts.size})
            for start, stop in itertools.pairwise(bounds):
                part_ids = ids.slice(start, stop - start)
                hashes = _hash(part_ids)
                by_hash = np.argsort(hashes)  # unique ids: no need for the stable (slower) sort
                self._runs.append(_Run(hashes[by_hash], by_hash.astype(np.int64), part_ids, ts[start:stop].copy()))
        self._rebuild_bitmap()

    def _make_run(self, hashes: npt.NDArray[np.uint64], ids: pl.Series, ts: npt.NDArray[np.int64]) -> _Run:
        order = np.argsort(hashes, kind="stable")
        return _Run(hashes[order], order.astype(np.int64), ids, ts)

    def _merge_last_two(self) -> None:
        older, newer = self._runs[-2], self._runs[-1]
        if self._cutoff is not None and (older.ts.min(initial=self._cutoff) < self._cutoff):
            keep = np.flatnonzero(older.ts >= self._cutoff)  # drop what fell out of the horizon
            older = self._make_run(_hash(older.ids.gather(keep)), older.ids.gather(keep), older.ts[keep])
            self._runs[-2] = older
            self._rebuild_bitmap()
        hashes = np.concatenate([older.hashes, newer.hashes])
        positions = np.concatenate([older.positions, newer.positions + len(older.ids)])
        order = np.argsort(hashes, kind="stable")  # two sorted runs: a linear merge for timsort
        ids = pl.concat([older.ids, newer.ids], rechunk=False)
        self._runs[-2:] = [_Run(hashes[order], positions[order], ids, np.concatenate([older.ts, newer.ts]))]

    def _rebuild_bitmap(self) -> None:
        self._maybe[:] = False
        for run in self._runs:
            self._maybe[run.hashes >> _SHIFT] = True
