"""bench/independent_telemetry.py: seeded, every kind and resolution present, labels inside the series, NAB
windows that do not overlap, and no code shared with tunewatch."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "independent_telemetry.py"


@pytest.fixture(scope="module")
def gen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("independent_telemetry_under_test", SCRIPT)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_same_seed_same_corpus_other_seed_other_corpus(gen: ModuleType) -> None:
    a, b, c = gen.generate(3, per_group=2), gen.generate(3, per_group=2), gen.generate(4, per_group=2)
    assert [s.key.split("/")[0] for s in a] == [s.key.split("/")[0] for s in b]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.t_ms, y.t_ms)
        np.testing.assert_array_equal(x.values, y.values)
        assert x.windows == y.windows
    assert any(
        x.values.size != z.values.size or not np.array_equal(x.values, z.values) for x, z in zip(a, c, strict=True)
    )


def test_kinds_resolutions_and_incident_types_present(gen: ModuleType) -> None:
    series = gen.generate(1, per_group=6)
    assert {s.group for s in series} == {f"{k}-{r}" for k in gen.KINDS for r in gen.RESOLUTIONS}
    seen = {inc.kind for s in series for inc in s.incidents}
    assert seen == {k for kinds in gen.INCIDENTS.values() for k in kinds}
    steps = {s.resolution: int(np.median(np.diff(s.t_ms))) for s in series}
    assert steps == {"hour": 3_600_000, "minute": 60_000}
    # missing stretches are absent rows: some series have gaps of more than one step
    assert any(np.diff(s.t_ms).max() > 1.5 * np.median(np.diff(s.t_ms)) for s in series)


def test_labels_and_windows_inside_the_series_after_probation(gen: ModuleType) -> None:
    changed = []
    for s in gen.generate(2, per_group=5):
        n = s.values.size
        assert s.t_ms.size == n == s.clean.size
        assert np.all(np.diff(s.t_ms) > 0)
        assert np.all(np.isfinite(s.values))
        assert len(s.windows) == len(s.incidents)
        probation = min(int(0.15 * n), 750)
        for (a, b), inc in zip(s.windows, sorted(s.incidents, key=lambda i: i.label), strict=True):
            assert 0 <= a <= inc.label <= b < n
            assert probation <= inc.first <= inc.label <= inc.last < n
        for (_, b0), (a1, _) in zip(s.windows, s.windows[1:], strict=False):
            assert b0 < a1  # windows never overlap
        if s.incidents:  # the incidents change the series; the clean twin is the same series without them
            changed.append(not np.array_equal(s.values, s.clean))
        else:
            np.testing.assert_array_equal(s.values, s.clean)
    # an incident on a tiny service can leave no trace (a few errors a day); nearly all do
    assert np.mean(changed) > 0.9


def test_kinds_look_like_their_metrics(gen: ModuleType) -> None:
    series = gen.generate(5, per_group=4)
    for s in series:
        if s.kind in ("requests", "purchases"):
            assert np.all(s.clean == np.round(s.clean)) and s.clean.min() >= 0  # counts
        if s.kind == "errors":
            assert s.clean.min() >= 0 and s.clean.max() <= 1  # a ratio
        if s.kind == "gauge":
            assert s.clean.min() >= 0 and s.clean.max() <= 100  # a percentage
        if s.kind == "latency":
            assert s.clean.min() > 0
    purchases = np.concatenate([s.clean for s in series if s.kind == "purchases" and s.resolution == "minute"])
    assert (purchases == 0).mean() > 0.2  # sparse


def test_writes_nab_layout(gen: ModuleType, tmp_path: Path) -> None:
    series = gen.generate(1, per_group=1)
    gen.write_corpus(series, tmp_path)
    labels = json.loads((tmp_path / "labels" / "combined_windows.json").read_text())
    assert set(labels) == {s.key for s in series}
    for s in series:
        lines = (tmp_path / "data" / s.key).read_text().splitlines()
        assert lines[0] == "timestamp,value" and len(lines) == s.values.size + 1
        assert len(labels[s.key]) == len(s.windows)


def test_imports_nothing_from_tunewatch() -> None:
    imports = [ln.strip() for ln in SCRIPT.read_text().splitlines() if ln.strip().startswith(("import ", "from "))]
    assert imports  # the check reads the script's real import lines
    assert not [ln for ln in imports if ln.split()[1].split(".")[0] == "tunewatch"]
