"""The alert engine's state: saved mid-run and loaded into a fresh engine, it continues as if never stopped."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import polars as pl
import pytest

from tunewatch.alert.engine import STATE_VERSION, AlertEngine
from tunewatch.alert.model import Alert
from tunewatch.alert.rules import RuleSet, parse_rules
from tunewatch.detect.stage import DETECTION_SCHEMA
from tunewatch.pipeline.stream_state import StreamStateCodec

T0 = 1_767_571_200_000
MIN = 60_000
WINDOWS = 40
SPLIT = 20  # windows [0, SPLIT) are the first half
CHUNK = 5  # windows per evaluate call

RULES = """
groups:
  - name: g
    rules:
      - alert: FailuresUp
        metric: failure_rate
        dimensions: [market]
        min_score: 0.7
        min_ratio: 2
        for: 2m
        keep_firing_for: 2m
        labels: {severity: critical}
      - alert: StreamsFellFast
        kind: rate_of_change
        metric: streams
        direction: down
        change_over: 10m
        min_change: 0.5
        min_base: 50
        for: 2m
        keep_firing_for: 3m
      - alert: Burn
        kind: slo_burn_rate
        metric: failure_rate
        dimensions: [global]
        objective: 99.5
        burn_windows:
          - {long: 1h, short: 5m, factor: 14.4}
        min_weight: 100
"""


def _row(i: int, metric: str, sid: int, dimset: str, value: float, **more: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"window_start": T0 + i * MIN, "metric": metric, "sid": sid, "dimset": dimset,
                           "value": value, "weight": 500.0, "expected": 0.01, "lower": 0.0, "upper": 0.03,
                           "score": 0.01}  # fmt: skip
    return row | more


def _detections() -> pl.DataFrame:
    """Incidents across the split: BR firing at the split, DE pending at it, a fall and a burn crossing it."""
    rows = []
    for i in range(WINDOWS):
        br = 0.5 if 14 <= i < 24 else 0.01
        de = 0.5 if SPLIT - 1 <= i < SPLIT + 4 else 0.01  # one window pending before the split, fires after
        for sid, market, v in ((0, "BR", br), (1, "DE", de)):
            rows.append(_row(i, "failure_rate", sid, "market", v, market=market, score=0.95 if v > 0.1 else 0.01))
        streams = 30.0 if 15 <= i < 21 else 100.0
        rows.append(_row(i, "streams", 0, "global", streams, expected=100.0, lower=50.0, upper=150.0, weight=1.0))
        burn = 0.2 if 10 <= i < 24 else 0.01
        rows.append(_row(i, "failure_rate", 0, "global", burn, weight=1000.0))
    return pl.DataFrame(rows, schema=DETECTION_SCHEMA)


def _metrics() -> pl.DataFrame:
    return pl.DataFrame({"window_start": [T0, T0], "dimset": ["global", "market"], "market": [None, "BR"],
                         "est_revenue_micros": [1e6, 1e6]})  # fmt: skip


def _run(engine: AlertEngine, det: pl.DataFrame, start: int, stop: int) -> list[Alert]:
    out: list[Alert] = []
    for first in range(start, stop, CHUNK):
        chunk = det.filter(pl.col("window_start").is_between(T0 + first * MIN, T0 + (first + CHUNK - 1) * MIN))
        out += engine.evaluate(chunk, _metrics())
    return out


def _json(alerts: list[Alert]) -> list[str]:
    """Alerts as JSON text: equal text, equal alerts (NaN included, which ``==`` on floats never is)."""
    return [json.dumps(a.to_dict(), sort_keys=True) for a in alerts]


def _through_codec(state: dict[str, Any]) -> dict[str, Any]:
    codec = StreamStateCodec("test")
    return codec.decode(codec.encode({"alerts": state}))["alerts"]


def _rules() -> RuleSet:
    return parse_rules(RULES)


@pytest.mark.parametrize("fold", [False, True])
def test_a_restored_engine_continues_like_an_uninterrupted_one(fold: bool) -> None:
    det = _detections()
    a = AlertEngine(_rules(), fold=fold)
    a_first, a_second = _run(a, det, 0, SPLIT), _run(a, det, SPLIT, WINDOWS)
    b = AlertEngine(_rules(), fold=fold)
    assert _json(_run(b, det, 0, SPLIT)) == _json(a_first)
    # folding leaves these alone: one anomaly alert per incident here, the burn and the fall are other kinds
    names = {"FailuresUp", "StreamsFellFast", "Burn"}
    assert {x.labels["alertname"] for x in b.active()} == names

    c = AlertEngine(_rules(), fold=fold)
    c.load_state_dict(_through_codec(b.state_dict()))
    assert _json(c.active()) == _json(b.active())  # the firing alerts come back equal, starts_at included
    c_second = _run(c, det, SPLIT, WINDOWS)

    assert _json(c_second) == _json(a_second)
    statuses = sorted((x.labels["alertname"], x.labels.get("market", ""), x.status) for x in c_second)
    expected = [("Burn", "", "resolved"), ("FailuresUp", "BR", "resolved"), ("FailuresUp", "DE", "firing"),
                ("FailuresUp", "DE", "resolved"), ("StreamsFellFast", "", "resolved")]  # fmt: skip
    assert statuses == expected
    de_firing = next(x for x in c_second if x.labels.get("market") == "DE" and x.status == "firing")
    assert de_firing.starts_at == T0 + (SPLIT - 1) * MIN  # the `for` period begun before the split went on
    cold = _run(AlertEngine(_rules(), fold=fold), det, SPLIT, WINDOWS)
    assert _json(cold) != _json(a_second)  # without the state, the second half differs


def test_state_holds_only_plain_values_and_arrays() -> None:
    engine = AlertEngine(_rules())
    _run(engine, _detections(), 0, SPLIT)
    state = engine.state_dict()
    assert state["version"] == STATE_VERSION and len(state["rule_fingerprints"]) == 3

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            assert all(isinstance(k, str) for k in value)
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        else:
            assert value is None or isinstance(value, bool | int | float | str | np.ndarray), type(value)

    walk(state)
    assert state["rules"][1]["history"]["buf"].shape == (1, 10, 1)  # rate of change: 10 kept windows, 1 series


def test_state_of_another_rule_set_is_refused_naming_the_rule() -> None:
    engine = AlertEngine(_rules())
    _run(engine, _detections(), 0, SPLIT)
    state = engine.state_dict()
    other = AlertEngine(parse_rules(RULES.replace("min_change: 0.5", "min_change: 0.4")))
    with pytest.raises(ValueError, match=r"another rule set; rule definitions differ at #2 'StreamsFellFast'"):
        other.load_state_dict(state)
    fewer = AlertEngine(parse_rules(RULES.split("      - alert: Burn")[0]))
    with pytest.raises(ValueError, match=r"taken with 3 rules \(FailuresUp, StreamsFellFast, Burn\), this engine "
                                         r"has 2 \(FailuresUp, StreamsFellFast\)"):  # fmt: skip
        fewer.load_state_dict(state)


def test_state_of_another_version_is_refused_naming_both_versions() -> None:
    state = AlertEngine(_rules()).state_dict()
    with pytest.raises(ValueError, match=rf"version 99 is not supported \(this engine reads AlertEngine version "
                                         rf"{STATE_VERSION}\)"):  # fmt: skip
        AlertEngine(_rules()).load_state_dict({**state, "version": 99})


def test_inconsistent_rule_state_is_refused_naming_the_rule() -> None:
    engine = AlertEngine(_rules())
    _run(engine, _detections(), 0, SPLIT)
    state = engine.state_dict()
    state["rules"][0]["run"] = state["rules"][0]["run"][:1]
    with pytest.raises(ValueError, match=r"alert state of rule 'FailuresUp'.*one length"):
        AlertEngine(_rules()).load_state_dict(state)
