"""Look-back rule kinds (rate of change, SLO burn rate): conditions, batching, annotations, rule-file errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pytest

from tunewatch.alert.engine import AlertEngine
from tunewatch.alert.model import Alert
from tunewatch.alert.rules import load_rules, parse_rules
from tunewatch.detect.stage import DETECTION_SCHEMA
from tunewatch.errors import ConfigError

T0 = 1_767_571_200_000
MIN = 60_000
EXAMPLES = "src/tunewatch/alert/examples/slo_rules.yaml"

ROC = """
groups:
  - name: g
    rules:
      - alert: StreamsFellFast
        kind: rate_of_change
        metric: streams
        direction: down
        change_over: 10m
        min_change: 0.5
        min_base: 50
        for: 2m
        keep_firing_for: 3m
"""

SLO = """
groups:
  - name: g
    rules:
      - alert: Burn
        kind: slo_burn_rate
        metric: failure_rate
        objective: 99.5
        burn_windows:
          - {long: 1h, short: 5m, factor: 14.4}
          - {long: 6h, short: 30m, factor: 6}
        min_weight: 100
"""


def _series(metric: str, values: list[float], weight: float = 1.0) -> pl.DataFrame:
    rows: list[dict[str, Any]] = [
        {
            "window_start": T0 + i * MIN,
            "metric": metric,
            "sid": 0,
            "dimset": "global",
            "value": v,
            "weight": weight,
            "expected": values[0],
            "lower": values[0] * 0.5,
            "upper": values[0] * 1.5,
            "score": 0.0,
        }
        for i, v in enumerate(values)
    ]
    return pl.DataFrame(rows, schema=DETECTION_SCHEMA)


def _metrics() -> pl.DataFrame:
    return pl.DataFrame({"window_start": [T0], "dimset": ["global"], "est_revenue_micros": [1e6]})


def _run(rules: str, det: pl.DataFrame, chunks: int = 1) -> list[Alert]:
    engine = AlertEngine(parse_rules(rules))
    windows = det.get_column("window_start").unique().sort()
    out: list[Alert] = []
    for part in np.array_split(windows.to_numpy(), chunks):
        out += engine.evaluate(det.filter(pl.col("window_start").is_in(part.tolist())), _metrics())
    return out


def test_rate_of_change_fires_on_a_fall_against_ten_minutes_earlier() -> None:
    values = [100.0] * 15 + [30.0] * 6 + [100.0] * 20
    changes = _run(ROC, _series("streams", values))
    assert [a.status for a in changes] == ["firing", "resolved"]
    firing = changes[0]
    assert firing.starts_at == T0 + 15 * MIN and firing.extra["fired_at"] == T0 + 17 * MIN
    assert firing.annotations["actual"] == "30.0"
    assert firing.annotations["expected"] == "100 (value 10m earlier)"
    assert firing.annotations["change"] == "-70.0% over 10m"
    assert firing.extra["rule_kind"] == "rate_of_change"


def test_rate_of_change_is_the_same_in_any_batching() -> None:
    values = [100.0] * 15 + [30.0] * 6 + [100.0] * 20
    whole = [a.to_dict() for a in _run(ROC, _series("streams", values))]
    assert whole == [a.to_dict() for a in _run(ROC, _series("streams", values), chunks=7)]


def test_rate_of_change_ignores_small_bases_and_slow_drifts() -> None:
    assert _run(ROC, _series("streams", [40.0] * 15 + [5.0] * 10)) == []  # base under min_base
    drift = [100.0 * 0.97**i for i in range(40)]  # -26 % per 10 minutes: never -50 %
    assert _run(ROC, _series("streams", drift)) == []


def _reference_fire(values: list[float], weight: float, budget: float) -> int | None:
    """First window index at which a pair of the SRE workbook fires (plain loop, for comparison)."""
    err = np.array(values) * weight
    for k in range(len(values)):
        for long, short, factor in ((60, 5, 14.4), (360, 30, 6.0)):
            lo, so = max(0, k + 1 - long), max(0, k + 1 - short)
            bl = err[lo : k + 1].sum() / (weight * (k + 1 - lo)) / budget
            bs = err[so : k + 1].sum() / (weight * (k + 1 - so)) / budget
            if bl >= factor and bs >= factor:
                return k
    return None


def test_slo_burn_fires_when_both_windows_burn_and_matches_a_plain_loop() -> None:
    values = [0.001] * 90 + [0.2] * 40
    expected_k = _reference_fire(values, 1000.0, 0.005)
    assert expected_k is not None and expected_k > 90  # the long window needs time to fill with failures
    for chunks in (1, 9):
        changes = _run(SLO, _series("failure_rate", values, weight=1000.0), chunks=chunks)
        firing = [a for a in changes if a.status == "firing"]
        assert len(firing) == 1
        assert firing[0].extra["fired_at"] == T0 + (expected_k + 1) * MIN
    alert = firing[0]
    factor = alert.extra["burn_factor"]
    assert alert.extra["burn_rate_long"] >= factor and alert.extra["burn_rate_short"] >= factor
    assert alert.annotations["expected"] == "0.50% (error budget of a 99.5% objective)"
    assert f"(alerting at {factor:g}x)" in alert.annotations["burn_rate"]


def test_slo_burn_ignores_a_short_spike_and_low_volume() -> None:
    spike = [0.001] * 90 + [0.2] * 3 + [0.001] * 30
    assert _run(SLO, _series("failure_rate", spike, weight=1000.0)) == []
    thin = [0.001] * 90 + [0.5] * 40  # heavy failures, but 2 attempts/min: under min_weight in 30 minutes
    assert _run(SLO, _series("failure_rate", thin, weight=2.0)) == []


def test_example_rules_validate() -> None:
    rules = load_rules(EXAMPLES)
    kinds = {r.kind for r in rules.rules}
    assert kinds == {"slo_burn_rate", "rate_of_change"}
    assert rules.rules[0].objective == pytest.approx(0.995)
    assert [w.factor for w in rules.rules[0].burn_windows] == [14.4, 6.0]


_SLO = "        kind: slo_burn_rate\n        metric: failure_rate\n"
_ROC = "        kind: rate_of_change\n        metric: plays\n"


@pytest.mark.parametrize(
    ("body", "where", "message"),
    [
        (_SLO, "r.yaml:4: groups.0.rules.0", "objective"),
        ("        kind: slo_burn_rate\n        metric: plays\n        objective: 99", "r.yaml:4:", "ratio metric"),
        (_SLO + "        objective: 150\n", "r.yaml:7:", "objective"),
        (
            _SLO + "        objective: 99\n        burn_windows:\n          - {long: 5m, short: 1h, factor: 2}\n",
            "r.yaml:9: groups.0.rules.0.burn_windows.0",
            "shorter",
        ),
        (_ROC + "        change_over: 90s\n", "r.yaml:4:", "whole minutes"),
        (_ROC + "        min_change: -1\n", "r.yaml:7:", "min_change"),
    ],
)
def test_lookback_rule_errors_have_line_numbers(body: str, where: str, message: str) -> None:
    text = f"groups:\n  - name: g\n    rules:\n      - alert: A\n{body}"
    with pytest.raises(ConfigError) as err:
        parse_rules(text, "r.yaml")
    assert str(err.value).startswith(where)
    assert message in str(err.value)
