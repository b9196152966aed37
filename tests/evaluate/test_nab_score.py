"""NAB scoring on hand-made cases whose score is computed by hand, and against a row-by-row port of NAB."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tunewatch.evaluate.nab_score import PROFILES, probation_length, score_corpus, sweep_file

STANDARD = PROFILES["standard"]
MAX_TP = math.tanh(2.5)  # 2 / (1 + e^-5) - 1


def scores_at(n: int, hits: dict[int, float]) -> np.ndarray:
    s = np.zeros(n)
    for i, v in hits.items():
        s[i] = v
    return s


def one_file(n: int, windows: list[tuple[int, int]], hits: dict[int, float], profile: str = "standard"):  # type: ignore[no-untyped-def]
    swept = {"a/f.csv": sweep_file(n, windows)}
    return score_corpus(swept, {"a/f.csv": scores_at(n, hits)}, PROFILES[profile])


def test_probation_is_15_percent_capped_at_750() -> None:
    assert probation_length(20) == 3
    assert probation_length(4032) == 604
    assert probation_length(22695) == 750


def test_detection_inside_window_earns_the_scaled_sigmoid() -> None:
    # 20 rows, window rows 10..13 (width 4); a detection at row 11 sits at -(13 - 11 + 1) / 4 = -0.75
    res = one_file(20, [(10, 13)], {11: 1.0})
    reward = math.tanh(5 * 0.75 / 2) / MAX_TP  # 2 / (1 + e^(5 * -0.75)) - 1 = tanh(1.875)
    assert res.raw == pytest.approx(reward)
    assert res.null == -1.0 and res.perfect == 1.0
    assert res.normalized == pytest.approx(100 * (reward + 1) / 2)
    assert (res.tp, res.fp, res.fn, res.threshold) == (1, 0, 0, 1.0)


def test_only_the_first_detection_in_a_window_counts() -> None:
    res = one_file(20, [(10, 13)], {10: 1.0, 11: 1.0, 13: 1.0})
    assert res.raw == pytest.approx(math.tanh(2.5 * 1.0) / MAX_TP)  # row 10: position -1 → exactly A_TP


def test_false_positive_before_any_window_costs_full_weight() -> None:
    res = one_file(20, [(10, 13)], {5: 1.0, 11: 1.0})
    assert res.raw == pytest.approx(math.tanh(1.875) / MAX_TP - 0.11)
    low_fp = one_file(20, [(10, 13)], {5: 1.0, 11: 1.0}, "reward_low_FP_rate")
    assert low_fp.raw == pytest.approx(math.tanh(1.875) / MAX_TP - 0.22)


def test_false_positive_just_after_a_window_costs_less() -> None:
    # row 15 is |13 - 15| / (4 - 1) = 2/3 past the window: 2 / (1 + e^(5 * 2/3)) - 1 = -tanh(5/3)
    res = one_file(20, [(10, 13)], {11: 1.0, 15: 1.0})
    assert res.raw == pytest.approx(math.tanh(1.875) / MAX_TP - 0.11 * math.tanh(5 / 3))


def test_probationary_detections_are_ignored_and_missed_windows_cost_fn() -> None:
    # 200 rows (30 probationary), window rows 100..113: firing everywhere would cost ~70 x 0.11 before it
    res = one_file(200, [(100, 113)], {2: 1.0})
    assert res.raw == -1.0 and res.normalized == 0.0 and res.threshold == 1.1
    low_fn = one_file(200, [(100, 113)], {2: 1.0}, "reward_low_FN_rate")
    assert low_fn.raw == -2.0 and low_fn.null == -2.0


def test_threshold_is_optimised_over_the_corpus() -> None:
    # 0.9 in the window, 0.8 outside: the best threshold keeps only the true positive
    res = one_file(20, [(10, 13)], {11: 0.9, 5: 0.8})
    assert res.threshold == 0.9
    assert res.raw == pytest.approx(math.tanh(1.875) / MAX_TP)
    # with a fixed lower threshold the false positive counts
    fixed = score_corpus({"a/f.csv": sweep_file(20, [(10, 13)])}, {"a/f.csv": scores_at(20, {11: 0.9, 5: 0.8})},
                         STANDARD, threshold=0.8)  # fmt: skip
    assert fixed.raw == pytest.approx(math.tanh(1.875) / MAX_TP - 0.11)


def test_file_without_windows_and_without_detections_scores_zero() -> None:
    res = score_corpus(
        {"a/f.csv": sweep_file(30, []), "a/g.csv": sweep_file(20, [(10, 13)])},
        {"a/f.csv": np.zeros(30), "a/g.csv": scores_at(20, {12: 1.0})},
        STANDARD,
    )
    assert res.per_file["a/f.csv"] == 0.0
    assert res.per_file["a/g.csv"] == pytest.approx(math.tanh(2.5 * 0.5) / MAX_TP)


# ---- a row-by-row port of NAB's sweeper (calcSweepScore / calcScoreByThreshold), to compare against ----


def _sig(x: float) -> float:
    return -1.0 if x >= 3.0 else 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


def _nab_reference(files: dict[str, tuple[int, list[tuple[int, int]], np.ndarray]], fp: float, fn: float) -> float:
    rows = []
    for name, (n, windows, scores) in files.items():
        wins = sorted(windows)
        prob = min(math.floor(0.15 * n), 0.15 * 5000)
        cur = None
        prev_right, prev_width = None, None
        for i in range(n):
            if wins and i == wins[0][0]:
                cur = wins.pop(0)
            if cur is not None:
                width = cur[1] - cur[0] + 1
                sweep = _sig(-(cur[1] - i + 1) / width) / _sig(-1.0)
            else:
                pos = 3.0 if prev_right is None else abs(prev_right - i) / (prev_width - 1)  # type: ignore[operator]
                sweep = _sig(pos) * fp
            wname = (f"{name}|{cur[0]}" if cur is not None else None) if i >= prob else "probationary"
            rows.append((float(scores[i]), sweep, wname))
            if cur is not None and i == cur[1]:
                prev_right, prev_width, cur = i, cur[1] - cur[0] + 1, None
    scorable = sorted([r for r in rows if r[2] != "probationary"], key=lambda r: r[0], reverse=True)
    parts: dict[str, float] = {"fp": 0.0}
    for r in scorable:
        if r[2] is not None:
            parts[r[2]] = -fn
    best = sum(parts.values())
    thr = 1.1
    for a, sweep, wname in scorable:
        if a != thr:
            best = max(best, sum(parts.values()))
            thr = a
        if wname is None:
            parts["fp"] += sweep
        else:
            parts[wname] = max(parts[wname], sweep)
    return max(best, sum(parts.values()))


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(min_value=30, max_value=80),
    starts=st.lists(st.integers(min_value=0, max_value=70), max_size=3, unique=True),
    width=st.integers(min_value=2, max_value=8),
    levels=st.integers(min_value=2, max_value=6),
    seed=st.integers(min_value=0, max_value=2**31),
)
def test_vectorised_scorer_matches_row_by_row_nab(
    n: int, starts: list[int], width: int, levels: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    windows, taken = [], -1
    for s in sorted(starts):
        if s > taken and s + width - 1 < n:
            windows.append((s, s + width - 1))
            taken = s + width
    scores = np.round(rng.integers(0, levels, n) / (levels - 1), 6)
    other = np.round(rng.integers(0, levels, 40) / (levels - 1), 6)
    files = {"c/a.csv": (n, windows, scores), "c/b.csv": (40, [(20, 23)], other)}
    swept = {k: sweep_file(v[0], v[1]) for k, v in files.items()}
    for prof in PROFILES.values():
        got = score_corpus(swept, {k: v[2] for k, v in files.items()}, prof)
        assert got.raw == pytest.approx(_nab_reference(files, prof.fp, prof.fn), abs=1e-9)
