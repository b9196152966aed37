"""The robustness suite is deterministic per seed, labelled like NAB, and its clean versions have no anomaly."""

from __future__ import annotations

import numpy as np
import pytest

from tunewatch.evaluate.nab_score import probation_length
from tunewatch.evaluate.peers import windowed_gaussian
from tunewatch.evaluate.synthetic import FAMILIES, generate


def test_same_seed_same_series_other_seed_other_series() -> None:
    a, b, c = generate(5, 3), generate(5, 3), generate(6, 3)
    assert [s.key for s in a] == [s.key for s in b]
    assert all(np.array_equal(x.values, y.values, equal_nan=True) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x.values[:50], y.values[:50]) for x, y in zip(a, c, strict=False))


def test_a_family_is_the_same_series_whichever_families_are_asked_for() -> None:
    # bench/generalisation.py --families telemetry must score the series the whole suite's telemetry rows are of
    alone = generate(1, 3, ["telemetry", "gaussian"])
    within = {s.key: s for s in generate(1, 3)}
    assert [s.key.split("/")[0] for s in alone] == ["telemetry"] * 3 + ["gaussian"] * 3
    for s in alone:
        assert np.array_equal(s.values, within[s.key].values, equal_nan=True)
        assert np.array_equal(s.t_ms, within[s.key].t_ms)


def test_every_family_is_labelled_after_probation_and_differs_only_at_anomalies() -> None:
    series = generate(11, 4)
    assert {s.key.split("/")[0] for s in series} == set(FAMILIES)
    for s in series:
        n = s.values.size
        assert s.t_ms.size == n and np.all(np.diff(s.t_ms) > 0)
        for (lo, hi), row in zip(s.windows, s.anomaly_rows, strict=True):
            assert probation_length(n) <= row and lo <= row <= hi < n
        differs = np.flatnonzero(~np.isclose(s.values, s.clean, equal_nan=True))
        assert differs.size > 0 and differs.min() >= min(s.anomaly_rows)


def test_unknown_family_is_refused() -> None:
    with pytest.raises(ValueError, match="nope"):
        generate(1, 1, ["gaussian", "nope"])


def test_windowed_gaussian_uses_only_the_past() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(0.0, 1.0, 500)
    t = np.arange(500, dtype=np.int64) * 60_000
    full = windowed_gaussian(t, x)
    x2 = x.copy()
    x2[300:] += 50.0  # changing the future changes nothing before it
    part = windowed_gaussian(t, x2)
    assert np.array_equal(full[:300], part[:300])
    assert part[300] > 0.999 and full[300] < 0.999
