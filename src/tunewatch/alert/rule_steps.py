"""A rule's state machine over many windows in one compiled loop: which series turn pending, fire and resolve.

Per series the rule keeps how many consecutive windows its condition has held (``run``), the windows it has been
quiet while firing (``quiet``), when the current run began (``onset``), the last window it held (``last_true``)
and whether it fires. :func:`step_rule` steps every window of a batch and returns the changes in order (within
a window: conditions turning pending, pending ones falling back, alerts firing, alerts resolving; each by
ascending series id); the engine turns them into alerts. No Python runs per window.
"""

from __future__ import annotations

from typing import Final, NamedTuple

import numba
import numpy as np

from tunewatch.detect.base import IntArray

PENDING: Final = 0  # the condition starts holding (for a rule with ``for``)
INACTIVE: Final = 1  # a pending condition stopped holding before ``for``
FIRE: Final = 2
RESOLVE: Final = 3


class RuleChanges(NamedTuple):
    """Changes in order: kind, window index, series id, row of the series in the window (-1: none), and the
    series' onset and last true window at that moment.

    >>> one = RuleChanges(*(np.array([v]) for v in (FIRE, 4, 7, 12, 180_000, 240_000)))
    >>> int(one.kind[0]) == FIRE, int(one.sid[0]), int(one.onset[0])
    (True, 7, 180000)
    """

    kind: IntArray
    window: IntArray
    sid: IntArray
    row: IntArray
    onset: IntArray
    last_true: IntArray


@numba.njit(cache=True, nogil=True)
def _run(
    windows: IntArray,
    bounds: IntArray,
    sids: IntArray,
    conds: np.ndarray,
    spans: IntArray,
    need: int,
    patience: int,
    confirm_span: int,
    confirm_minutes: int,
    window_ms: int,
    report_pending: bool,
    run: IntArray,
    quiet: IntArray,
    onset: IntArray,
    last_true: IntArray,
    firing: np.ndarray,
    out: IntArray,
    write: bool,
) -> int:
    size = run.size
    true_now = np.zeros(size, dtype=np.bool_)
    span = np.ones(size, dtype=np.int64)
    row = np.full(size, -1, dtype=np.int64)
    fire = np.zeros(size, dtype=np.bool_)
    resolve = np.zeros(size, dtype=np.bool_)
    n = 0
    for j in range(windows.size):
        t = windows[j]
        a, b = bounds[j], bounds[j + 1]
        for k in range(a, b):
            s = sids[k]
            row[s] = k
            if conds[k]:
                true_now[s] = True
                span[s] = spans[k]
        if report_pending:  # before `run` is updated
            for kind in (PENDING, INACTIVE):
                for s in range(size):
                    if firing[s]:
                        continue
                    started = kind == PENDING and true_now[s] and run[s] == 0
                    dropped = kind == INACTIVE and not true_now[s] and 0 < run[s] < need
                    if started or dropped:
                        if write:
                            out[0, n], out[1, n], out[2, n], out[3, n] = kind, j, s, row[s]
                            out[4, n], out[5, n] = onset[s], last_true[s]
                        n += 1
        for s in range(size):
            if true_now[s]:
                run[s] += 1
                if run[s] == 1:
                    onset[s] = t - (min(span[s], need) - 1) * window_ms  # back to the credited minutes
                last_true[s] = t
            else:
                run[s] = 0
            quiet[s] = quiet[s] + 1 if (firing[s] and not true_now[s]) else 0
            confirm = min(need, confirm_minutes) if span[s] > confirm_span else 1
            held = max(run[s], span[s]) >= need and run[s] >= confirm
            fire[s] = not firing[s] and held
            resolve[s] = firing[s] and quiet[s] >= patience
        for kind in (FIRE, RESOLVE):
            for s in range(size):
                if fire[s] if kind == FIRE else resolve[s]:
                    if write:
                        out[0, n], out[1, n], out[2, n], out[3, n] = kind, j, s, row[s]
                        out[4, n], out[5, n] = onset[s], last_true[s]
                    n += 1
        for s in range(size):
            if fire[s]:
                firing[s] = True
            elif resolve[s]:
                firing[s] = False
                quiet[s] = 0
        for k in range(a, b):
            s = sids[k]
            true_now[s] = False
            span[s] = 1
            row[s] = -1
    return n


def step_rule(
    windows: IntArray,
    bounds: IntArray,
    sids: IntArray,
    conds: np.ndarray,
    spans: IntArray,
    *,
    need: int,
    patience: int,
    confirm_span: int,
    confirm_minutes: int,
    window_ms: int,
    report_pending: bool,
    state: tuple[IntArray, IntArray, IntArray, IntArray, np.ndarray],
) -> RuleChanges:
    """Step the windows ``windows`` (window ``j``: rows ``bounds[j]:bounds[j + 1]`` of ``sids``, ``conds``,
    ``spans``) through the rule state ``(run, quiet, onset, last_true, firing)``, updated in place; return the
    changes. ``report_pending``: also the conditions turning pending and falling back.

    >>> state = (np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros(1, np.int64),
    ...          np.zeros(1, bool))
    >>> ch = step_rule(np.array([0, 60_000, 120_000]), np.array([0, 1, 2, 3]), np.zeros(3, np.int64),
    ...                np.array([True, True, False]), np.ones(3, np.int64), need=2, patience=1, confirm_span=5,
    ...                confirm_minutes=2, window_ms=60_000, report_pending=False, state=state)
    >>> ch.kind.tolist(), ch.window.tolist()  # fires once the condition held 2 windows, resolves when it stops
    ([2, 3], [1, 2])
    """
    w, bo, si = windows.astype(np.int64), bounds.astype(np.int64), sids.astype(np.int64)
    co, sp = np.asarray(conds, dtype=np.bool_), spans.astype(np.int64)
    run, quiet, onset, last_true, firing = state
    counted = np.zeros((6, 0), dtype=np.int64)
    copies = run.copy(), quiet.copy(), onset.copy(), last_true.copy(), firing.copy()
    total = _run(w, bo, si, co, sp, need, patience, confirm_span, confirm_minutes, window_ms, report_pending,
                 copies[0], copies[1], copies[2], copies[3], copies[4], counted, False)  # fmt: skip
    out = np.zeros((6, total), dtype=np.int64)
    _run(w, bo, si, co, sp, need, patience, confirm_span, confirm_minutes, window_ms, report_pending,
         run, quiet, onset, last_true, firing, out, True)  # fmt: skip
    return RuleChanges(*out)
