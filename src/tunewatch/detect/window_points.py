"""A metric's detector input over many windows at once: its rows, plus explicit zeros for silent count series.

The detection stage steps every window of a batch; a count-like series seen within ``zero_fill_ms`` but absent
from a window gets a zero point there (weight 1), so that an outage is seen as a drop, not a gap. This is a loop
over windows and series, compiled, so that a batch of hundreds of windows costs no Python per window.
"""

from __future__ import annotations

import numba
import numpy as np

from tunewatch.detect.base import FloatArray, IntArray


@numba.njit(cache=True, nogil=True)
def _fill(
    windows: IntArray,
    bounds: IntArray,
    sids: IntArray,
    values: FloatArray,
    weights: FloatArray,
    last_seen: IntArray,
    zero_fill_ms: int,
    fill: bool,
    write: bool,
    out_t: IntArray,
    out_ids: IntArray,
    out_v: FloatArray,
    out_w: FloatArray,
    starts: IntArray,
) -> int:
    present = np.zeros(last_seen.size, dtype=np.bool_)
    n = 0
    for i in range(windows.size):
        t = windows[i]
        a, b = bounds[i], bounds[i + 1]
        starts[i] = n
        for j in range(a, b):
            if write:
                out_t[n], out_ids[n], out_v[n], out_w[n] = t, sids[j], values[j], weights[j]
            n += 1
        if fill:
            for j in range(a, b):
                present[sids[j]] = True
            for s in range(last_seen.size):  # ascending series ids
                if last_seen[s] >= t - zero_fill_ms and not present[s]:
                    if write:
                        out_t[n], out_ids[n], out_v[n], out_w[n] = t, s, 0.0, 1.0
                    n += 1
            for j in range(a, b):
                present[sids[j]] = False
        for j in range(a, b):
            last_seen[sids[j]] = t
    starts[windows.size] = n
    return n


def window_points(
    windows: IntArray,
    bounds: IntArray,
    sids: IntArray,
    values: FloatArray,
    weights: FloatArray,
    last_seen: IntArray,
    zero_fill_ms: int,
    fill: bool,
) -> tuple[IntArray, IntArray, FloatArray, FloatArray, IntArray]:
    """The points of every window, in window order: window ``i``'s rows ``bounds[i]:bounds[i + 1]`` (series ids
    ``sids``, in their order), then, with ``fill``, a zero for every series seen within ``zero_fill_ms`` before
    but absent (ascending series id). Returns times, series ids, values, weights and each window's start in
    them (one more: the end); ``last_seen`` (per series id) is updated in place.

    >>> t, ids, v, w, starts = window_points(np.array([0, 60_000]), np.array([0, 2, 3]), np.array([0, 1, 1]),
    ...     np.array([5.0, 7.0, 6.0]), np.ones(3), np.full(2, -(2**62)), 3_600_000, True)
    >>> ids.tolist(), v.tolist(), starts.tolist()  # series 0 is silent in the second window: a zero
    ([0, 1, 1, 0], [5.0, 7.0, 6.0, 0.0], [0, 2, 4])
    """
    starts = np.zeros(windows.size + 1, dtype=np.int64)
    empty_i, empty_f = np.zeros(0, dtype=np.int64), np.zeros(0)
    args = (windows, bounds, sids, values, weights)
    total = _fill(*args, last_seen.copy(), zero_fill_ms, fill, False, empty_i, empty_i, empty_f, empty_f, starts)
    out_t, out_ids = np.empty(total, dtype=np.int64), np.empty(total, dtype=np.int64)
    out_v, out_w = np.empty(total), np.empty(total)
    _fill(*args, last_seen, zero_fill_ms, fill, True, out_t, out_ids, out_v, out_w, starts)
    return out_t, out_ids, out_v, out_w, starts
