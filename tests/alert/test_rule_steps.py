"""The compiled rule state machine: the changes of the former per-window NumPy loop, and the same whether the
windows come in one call or one call each."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tunewatch.alert.rule_steps import FIRE, INACTIVE, PENDING, RESOLVE, step_rule

W = 60_000


def _fresh(size: int) -> tuple[np.ndarray, ...]:
    return (*(np.zeros(size, dtype=np.int64) for _ in range(4)), np.zeros(size, dtype=bool))


def _oracle(windows, bounds, sids, conds, spans, need, patience, state):  # type: ignore[no-untyped-def]
    """The former loop of AlertEngine._step_rule, as array expressions per window."""
    run, quiet, onset, last_true, firing = (a.copy() for a in state)
    changes = []
    for j, t in enumerate(windows):
        a, b = bounds[j], bounds[j + 1]
        ids, c = sids[a:b], conds[a:b]
        pos = {int(s): a + k for k, s in enumerate(ids)}
        true_now = np.zeros(run.size, dtype=bool)
        true_now[ids[c]] = True
        span = np.ones(run.size, dtype=np.int64)
        span[ids[c]] = spans[a:b][c]
        changes += [(PENDING, j, int(s), pos[int(s)]) for s in np.flatnonzero(true_now & (run == 0) & ~firing)]
        dropped = np.flatnonzero(~true_now & (run > 0) & (run < need) & ~firing)
        changes += [(INACTIVE, j, int(s), pos.get(int(s), -1)) for s in dropped]
        run = np.where(true_now, run + 1, 0)
        started = true_now & (run == 1)
        onset[started] = t - (np.minimum(span[started], need) - 1) * W
        last_true[true_now] = t
        quiet = np.where(firing & ~true_now, quiet + 1, 0)
        confirm = np.where(span > 5, min(need, 2), 1)
        held = (np.maximum(run, span) >= need) & (run >= confirm)
        fire = np.flatnonzero(~firing & held)
        resolve = np.flatnonzero(firing & (quiet >= patience))
        changes += [(FIRE, j, int(s), pos[int(s)], int(onset[s])) for s in fire]
        changes += [(RESOLVE, j, int(s), pos.get(int(s), -1), int(last_true[s])) for s in resolve]
        firing[fire] = True
        firing[resolve] = False
        quiet[resolve] = 0
    return changes, (run, quiet, onset, last_true, firing)


def _listed(ch) -> list[tuple[int, ...]]:  # type: ignore[no-untyped-def]
    out = []
    for kind, j, sid, row, onset, last in zip(*(c.tolist() for c in ch), strict=True):
        extra = (onset,) if kind == FIRE else (last,) if kind == RESOLVE else ()
        out.append((kind, j, sid, row, *extra))
    return out


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), need=st.integers(1, 6), patience=st.integers(1, 4))
def test_changes_equal_the_former_loop_and_do_not_depend_on_batching(seed: int, need: int, patience: int) -> None:
    rng = np.random.default_rng(seed)
    n_windows, size = 60, 6
    windows = np.arange(n_windows, dtype=np.int64) * W
    per = rng.integers(0, size + 1, n_windows)
    sids = np.concatenate([np.sort(rng.choice(size, k, replace=False)) for k in per]).astype(np.int64)
    conds = rng.random(sids.size) < 0.5
    spans = rng.choice([1, 1, 1, 5, 15], sids.size).astype(np.int64)
    bounds = np.concatenate([[0], np.cumsum(per)]).astype(np.int64)
    kw = {"need": need, "patience": patience, "confirm_span": 5, "confirm_minutes": 2, "window_ms": W,
          "report_pending": True}  # fmt: skip
    batched_state = _fresh(size)
    batched = _listed(step_rule(windows, bounds, sids, conds, spans, state=batched_state, **kw))
    expected, oracle_state = _oracle(windows, bounds, sids, conds, spans, need, patience, _fresh(size))
    assert batched == expected
    for got, want in zip(batched_state, oracle_state, strict=True):
        np.testing.assert_array_equal(got, want)
    one_state = _fresh(size)
    singles = []
    for j in range(n_windows):
        a, b = bounds[j], bounds[j + 1]
        part = _listed(step_rule(windows[j : j + 1], np.array([0, b - a]), sids[a:b], conds[a:b], spans[a:b],
                                 state=one_state, **kw))  # fmt: skip
        singles += [(k, j, s, r + a if r >= 0 else r, *rest) for k, _, s, r, *rest in part]
    assert singles == batched
