"""The alert engine: rule conditions over detection frames and the per-series alert lifecycle.

Conditions are evaluated as Polars expressions over a whole batch of windows; the lifecycle (inactive →
pending → firing → resolved, with ``for`` and ``keep_firing_for``) steps window by window with NumPy arrays
indexed by series id, so the cost per window does not depend on the number of series in Python terms.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, overload

import numpy as np
import polars as pl

from tunewatch.alert.explain import dims_text, format_value, render, top_contributors
from tunewatch.alert.incidents import IncidentFolder
from tunewatch.alert.log import Transition
from tunewatch.alert.model import Alert
from tunewatch.alert.revenue_risk import RevenueModel
from tunewatch.alert.rule_steps import FIRE, INACTIVE, PENDING, step_rule
from tunewatch.alert.rules import Rule, RuleSet
from tunewatch.alert.windows import Absence, BurnRate, RateOfChange, stateful_condition
from tunewatch.detect.count_tail import CountTail, tail_score
from tunewatch.detect.detections import Detections
from tunewatch.process.catalogue import METRICS
from tunewatch.process.dimensions import dimension_set

WINDOW_MS: Final = 60_000
#: version of :meth:`AlertEngine.state_dict`'s layout
STATE_VERSION: Final = (
    3  # 2: absence rules keep the expected value of each series before it fell silent; 3: open incidents
)
_READABLE_VERSIONS: Final = (2, 3)
STATE_COMPONENT: Final = "AlertEngine"
_ARRAYS: Final = ("run", "quiet", "onset", "last_true", "firing")
#: consecutive minutes a condition must hold before its pooled evidence counts towards ``for`` (one minute's
#: pooled deviation is confirmed by the next one's before the minutes it spans are credited)
CONFIRM_MINUTES: Final = 2
#: pooled evidence spanning more minutes than this needs confirming (a long pool, judged where the short one
#: rests on little, can lean on one minute's chance events); shorter pools are credited at once
CONFIRM_SPAN: Final = 5
#: runbook page used when a rule names no ``runbook_url`` (anchor: the alert name in kebab case)
DEFAULT_RUNBOOKS: Final = "https://github.com/tunewatch/tunewatch/blob/main/docs/runbooks.md"


def _anchor(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


def _duration_text(ms: int) -> str:
    minutes = ms // WINDOW_MS
    return f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m"


@dataclass(slots=True)
class _RuleState:
    run: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # consecutive true windows
    quiet: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # false windows while firing
    onset: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    last_true: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    firing: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    alerts: dict[int, Alert] = field(default_factory=dict)  # sid → firing alert
    pending: dict[int, dict[str, str]] = field(default_factory=dict)  # sid → labels (only with on_transition)

    def grow(self, size: int) -> None:
        extra = size - self.run.size
        if extra > 0:
            self.run = np.concatenate([self.run, np.zeros(extra, dtype=np.int64)])
            self.quiet = np.concatenate([self.quiet, np.zeros(extra, dtype=np.int64)])
            self.onset = np.concatenate([self.onset, np.zeros(extra, dtype=np.int64)])
            self.last_true = np.concatenate([self.last_true, np.zeros(extra, dtype=np.int64)])
            self.firing = np.concatenate([self.firing, np.zeros(extra, dtype=bool)])


def rule_fingerprint(rule: Rule) -> str:
    """BLAKE2b-128 of the rule's full definition (every field, defaults included): equal rules, equal hash."""
    return hashlib.blake2b(rule.model_dump_json().encode(), digest_size=16).hexdigest()


def _plain(value: Any, key: str) -> Any:
    """``value`` as JSON-like data (dicts with string keys, lists, numbers, strings, None) for a state tree."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, key) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"alert state: {key!r} holds a {type(value).__name__}, which is not JSON-like")


def _alert_state(alert: Alert) -> dict[str, Any]:
    return {
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "status": alert.status,
        "starts_at": alert.starts_at,
        "ends_at": alert.ends_at,
        "generator_url": alert.generator_url,
        "extra": _plain(alert.extra, "extra"),
    }


def _alert_of(state: Mapping[str, Any]) -> Alert:
    status = state["status"]
    if status not in ("firing", "resolved"):
        raise ValueError(f"alert 'status': {status!r} is neither 'firing' nor 'resolved'")
    return Alert(
        labels={str(k): str(v) for k, v in state["labels"].items()},
        annotations={str(k): str(v) for k, v in state["annotations"].items()},
        status=status,
        starts_at=int(state["starts_at"]),
        ends_at=None if state["ends_at"] is None else int(state["ends_at"]),
        generator_url=str(state["generator_url"]),
        extra=dict(state["extra"]),
    )


def condition(rule: Rule) -> pl.Expr:
    """The rule's condition over a detection frame (value, weight, expected, score; NaN already made null).

    ``min_weight`` guards an anomaly rule by the weight the detector's judgement rests on (``evidence_weight``,
    several minutes when it pooled them), a threshold rule by the point's own weight. An anomaly rule's size
    guards (``min_delta``, ``min_ratio``, ``min_excess``) read the values that judgement rests on too (the
    pooled minutes' observed and expected values per minute, and their excess summed), so that a slice of a
    few events a minute is judged on its last minutes together, not on one minute's 0, 1 or 3 events.
    """
    v, e, w = pl.col("value"), pl.col("expected"), pl.col("weight")
    guard = w >= rule.min_weight
    # an anomaly judged over several points (the detector pools them) rests on their weight together
    evidence_guard = pl.coalesce(pl.col("evidence_weight"), w) >= rule.min_weight
    if rule.kind == "threshold":
        assert rule.value is not None
        ops = {">": v > rule.value, ">=": v >= rule.value, "<": v < rule.value, "<=": v <= rule.value}
        return (ops[rule.op] & guard).fill_null(False)
    if rule.kind in ("absence", "rate_of_change", "slo_burn_rate"):  # look-back kinds: see alert.windows
        return pl.col("__cond").fill_null(False)
    direction = rule.effective_direction
    ev, ee = pl.coalesce(pl.col("evidence_value"), v), pl.coalesce(pl.col("evidence_expected"), e)
    excess = pl.coalesce(pl.col("evidence_excess"), v - e)

    def sized(obs: pl.Expr, exp: pl.Expr, ex: pl.Expr, side: str) -> pl.Expr:
        return _moved_enough(rule, obs, exp, side) & ((ex if side == "up" else -ex) >= rule.min_excess)

    # the size guards pass on the point or on the pooled minutes (a shift whose pool still holds normal
    # minutes is big on its newest point first)
    up, down = (sized(v, e, excess, s) | sized(ev, ee, excess, s) for s in ("up", "down"))
    moved = up if direction == "up" else down if direction == "down" else up | down
    return (moved & evidence_guard & (pl.col("score") >= rule.min_score)).fill_null(False)


@overload
def _moved_enough(rule: Rule, obs: float, exp: float, side: str) -> bool: ...
@overload
def _moved_enough(rule: Rule, obs: pl.Expr, exp: pl.Expr, side: str) -> pl.Expr: ...
def _moved_enough(rule: Rule, obs: Any, exp: Any, side: str) -> Any:
    """An observed value against its expected one passes the rule's ``min_delta`` and ``min_ratio`` on ``side``
    (``up``/``down``): over columns of a detection frame (expressions) or for one alert's values (numbers)."""
    if side == "up":
        return (obs > exp) & (obs - exp >= rule.min_delta) & (obs >= exp * rule.min_ratio)
    return (obs < exp) & (exp - obs >= rule.min_delta) & (obs * rule.min_ratio <= exp)


def watched_dimensions(rules: RuleSet) -> dict[str, tuple[str, ...]]:
    """Alert name → the dimension sets its rules watch (several rules may share a name, each with its own
    dimensions and guards: ``StreamsSurge`` on markets and on single tracks and artists).

    >>> from tunewatch.alert.rules import parse_rules
    >>> rules = parse_rules("groups: [{name: g, rules: [{alert: A, metric: plays, dimensions: [market]}, "
    ...                     "{alert: A, metric: plays, dimensions: [global, track_id]}]}]")
    >>> watched_dimensions(rules)
    {'A': ('market', 'global', 'track_id')}
    """
    out: dict[str, tuple[str, ...]] = {}
    for r in rules.rules:
        out[r.alert] = (*out.get(r.alert, ()), *(d for d in r.dimensions if d not in out.get(r.alert, ())))
    return out


def with_count_tail(tail: CountTail, rows: pl.DataFrame, rule: Rule, cond: pl.Expr) -> pl.DataFrame:
    """``rows`` (one count metric, in window order) with the count tail's evidence of a drop where that meets the
    rule's condition ``cond`` and the detector's own evidence does not: its score, and the minutes, observed
    and expected values and excess it rests on in the ``evidence_*`` columns, so that the rule's guards, ``for``
    and the alert read what the judgement rests on. Elsewhere the rows are the detector's, unchanged: the rule
    holds where either judgement meets it."""
    if rows.is_empty():
        return rows
    ev = tail.scan(
        rows.get_column("window_start").to_numpy(),
        rows.get_column("sid").to_numpy(),
        rows.get_column("value").cast(pl.Float64).fill_null(np.nan).to_numpy(),
        rows.get_column("expected").fill_null(np.nan).to_numpy(),
        min_excess=rule.min_excess,
        min_ratio=rule.min_ratio,
    )
    has = ev.points > 0
    if not has.any():
        return rows
    with np.errstate(invalid="ignore", divide="ignore"):
        new = {
            "score": tail_score(ev.z),
            "evidence_weight": ev.points,
            "evidence_value": ev.observed / ev.points,
            "evidence_expected": ev.expected / ev.points,
            "evidence_excess": ev.observed - ev.expected,
            "evidence_points": ev.points,
        }
    own = rows.select(cond).to_series().to_numpy()
    tailed = rows.with_columns(pl.Series(k, np.where(has, v, np.nan), dtype=pl.Float64) for k, v in new.items())
    take = has & ~own & tailed.select(cond).to_series().to_numpy()
    if not take.any():
        return rows
    mask = pl.Series("__tail", take)
    return (
        rows.with_columns(mask)
        .with_columns(
            pl.when(pl.col("__tail")).then(pl.Series(k, v, dtype=pl.Float64)).otherwise(pl.col(k)).alias(k)
            for k, v in new.items()
        )
        .drop("__tail")
    )


class AlertEngine:
    """Evaluates a rule set over detection frames and emits alert state changes (firing / resolved).

    >>> from tunewatch.alert.rules import parse_rules
    >>> from tunewatch.detect.stage import DetectionStage
    >>> from tunewatch.process import MusicDataProcessor
    >>> from tunewatch.validate import EnterpriseDataValidator
    >>> rules = parse_rules("groups: [{name: g, rules: [{alert: AdRevenueHigh, kind: threshold, "
    ...                     "metric: ad_revenue_micros, dimensions: [market], op: '>', value: 3000}]}]")
    >>> ads = [{"event_id": f"e{i}", "ts": 1_699_999_980_000 + i, "event_type": "ad", "user_id": "u1",
    ...         "market": "SE" if i % 2 else "BR", "platform": "web", "tier": "free", "ad_revenue_micros": 1200}
    ...        for i in range(5)]
    >>> metrics = MusicDataProcessor().process(EnterpriseDataValidator().validate(ads)).metrics
    >>> detections = DetectionStage(rules.targets()).run(metrics)
    >>> [(a.status, a.name, a.labels["market"]) for a in AlertEngine(rules).evaluate(detections, metrics)]
    [('firing', 'AdRevenueHigh', 'BR')]
    """

    def __init__(
        self,
        rules: RuleSet,
        *,
        detector_name: str = "robust",
        on_transition: Callable[[Transition], None] | None = None,
        fold: bool = True,
    ) -> None:
        self.rules = rules
        self.detector_name = detector_name
        #: receives the lifecycle steps no alert carries (pending, and pending back to inactive)
        self.on_transition = on_transition
        self._state = [_RuleState() for _ in rules.rules]
        self._conditions = [condition(r) for r in rules.rules]
        self._lookback = [stateful_condition(r) for r in rules.rules]
        #: exact count tails of the last minutes, for count rules that ask for them (``count_tail``)
        self._tails = [CountTail() if r.count_tail else None for r in rules.rules]
        #: folds the alerts one incident raises on many slices into one notification (see alert.incidents)
        self.folder = IncidentFolder(watched=watched_dimensions(rules)) if fold else None
        #: each slice's revenue rates, for the revenue at risk of its alerts (see alert.revenue_risk)
        self.revenue = RevenueModel()

    def active(self) -> list[Alert]:
        """Notifications firing now (one per incident when folding)."""
        if self.folder is not None:  # incidents of anomaly rules, and the other kinds' alerts as they are
            rest = [a for r, st in zip(self.rules.rules, self._state, strict=True) if r.kind != "anomaly"
                    for a in st.alerts.values()]  # fmt: skip
            return self.folder.active() + rest
        return [a for st in self._state for a in st.alerts.values()]

    def state_dict(self) -> dict[str, Any]:
        """What the rules' lifecycle has reached, as plain values and NumPy arrays (the stream-state format).

        Bound to this rule set: it carries a fingerprint of every rule, and :meth:`load_state_dict` refuses it
        for other rules. Per rule: the per-series arrays, the firing alerts (series ids and fields), the pending
        label sets and, for look-back kinds, the kept windows of history.
        """
        rules = []
        for st, lookback, tail in zip(self._state, self._lookback, self._tails, strict=True):
            alerts = sorted(st.alerts.items())
            pending = sorted(st.pending.items())
            rules.append({
                **{name: getattr(st, name).copy() for name in _ARRAYS},
                "alert_sids": np.array([sid for sid, _ in alerts], dtype=np.int64),
                "alerts": [_alert_state(a) for _, a in alerts],
                "pending_sids": np.array([sid for sid, _ in pending], dtype=np.int64),
                "pending": [dict(labels) for _, labels in pending],
                "history": None if lookback is None else lookback.history.state_dict(),
                "count_tail": None if tail is None else tail.state_dict(),
            })  # fmt: skip
        return {
            "component": STATE_COMPONENT,
            "version": STATE_VERSION,
            "rule_fingerprints": [rule_fingerprint(r) for r in self.rules.rules],
            "rule_names": [r.alert for r in self.rules.rules],
            "rules": rules,
            "incidents": None if self.folder is None else _plain(self.folder.state_dict(), "incidents"),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume from :meth:`state_dict` (into a fresh engine: on error it may be half loaded).

        Raises ``ValueError`` naming both versions for a state of another version, and naming the rules that
        differ for a state of another rule set.
        """
        found = state.get("component"), state.get("version")
        if found[0] != STATE_COMPONENT or found[1] not in _READABLE_VERSIONS:
            raise ValueError(f"alert state: component {found[0]!r} version {found[1]!r} is not supported (this "
                             f"engine reads {STATE_COMPONENT} version {STATE_VERSION})")  # fmt: skip
        self._check_rules(state)
        entries = state.get("rules")
        if not isinstance(entries, list) or len(entries) != len(self._state):
            raise ValueError(f"alert state 'rules': expected a list of {len(self._state)} rule states")
        names = [r.alert for r in self.rules.rules]
        for name, st, lookback, tail, entry in zip(names, self._state, self._lookback, self._tails, entries,
                                                   strict=True):  # fmt: skip
            try:
                self._load_rule(st, lookback, entry)
                if tail is not None and entry.get("count_tail") is not None:  # states before count tails: fresh
                    tail.load_state_dict(entry["count_tail"])
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise ValueError(f"alert state of rule {name!r}: {type(exc).__name__}: {exc}") from None
        incidents = state.get("incidents")
        if self.folder is not None and isinstance(incidents, Mapping):
            self.folder.load_state_dict(incidents)

    def _check_rules(self, state: Mapping[str, Any]) -> None:
        theirs = list(state.get("rule_fingerprints") or [])
        their_names = list(state.get("rule_names") or [])
        ours = [rule_fingerprint(r) for r in self.rules.rules]
        if theirs == ours:
            return
        names = [r.alert for r in self.rules.rules]
        if len(theirs) != len(ours):
            raise ValueError(f"alert state: taken with {len(theirs)} rules ({', '.join(map(str, their_names))}), "
                             f"this engine has {len(ours)} ({', '.join(names)})")  # fmt: skip
        differ = [f"#{i + 1} {names[i]!r}" + (f" (was {their_names[i]!r})" if i < len(their_names)
                                              and their_names[i] != names[i] else "")
                  for i, (a, b) in enumerate(zip(theirs, ours, strict=True)) if a != b]  # fmt: skip
        raise ValueError(f"alert state: taken with another rule set; rule definitions differ at {', '.join(differ)}")

    @staticmethod
    def _load_rule(
        st: _RuleState, lookback: RateOfChange | BurnRate | Absence | None, entry: Mapping[str, Any]
    ) -> None:
        arrays = {name: entry[name] for name in _ARRAYS}
        sizes = {a.size if isinstance(a, np.ndarray) and a.ndim == 1 else -1 for a in arrays.values()}
        if len(sizes) != 1 or -1 in sizes:
            raise ValueError(f"the arrays {', '.join(_ARRAYS)} must be one-dimensional and of one length")
        for name, a in arrays.items():
            setattr(st, name, a.astype(bool if name == "firing" else np.int64, copy=True))
        size = sizes.pop()
        alert_sids, alerts = entry["alert_sids"], entry["alerts"]
        pending_sids, pending = entry["pending_sids"], entry["pending"]
        if len(alert_sids) != len(alerts) or len(pending_sids) != len(pending):
            raise ValueError("series ids and alerts (or pending label sets) differ in number")
        if any(not 0 <= int(s) < size for s in [*alert_sids.tolist(), *pending_sids.tolist()]):
            raise ValueError(f"a series id is outside the {size} series of the arrays")
        st.alerts = {int(s): _alert_of(a) for s, a in zip(alert_sids.tolist(), alerts, strict=True)}
        st.pending = {int(s): {str(k): str(v) for k, v in labels.items()}
                      for s, labels in zip(pending_sids.tolist(), pending, strict=True)}  # fmt: skip
        history = entry["history"]
        if (lookback is None) != (history is None):
            raise ValueError("look-back history present for a rule without one, or missing")
        if lookback is not None:
            lookback.history.load_state_dict(history)

    def evaluate(self, detections: Detections | pl.DataFrame, metrics: pl.DataFrame) -> list[Alert]:
        """Step every rule through the windows of ``detections`` (the detection stage's output, or a detection
        frame: missing columns read as null); return state changes in time order.

        A rule reads its metric's points in its dimension sets as arrays; the key strings of a point are looked
        up only for the points an alert is about."""
        found = detections if isinstance(detections, Detections) else Detections.of_frame(detections)
        if found.is_empty():
            return []
        windows = found.windows()
        at = _PointsAt(found)  # an alert's window is read when it fires and again to fold it: once
        changes: list[tuple[int, int, Alert]] = []
        rules = zip(self.rules.rules, self._conditions, self._state, self._lookback, self._tails, strict=True)
        for i, (rule, cond, state, lookback, tail) in enumerate(rules):
            rows = found.rows(rule.metric, rule.dimensions)
            if lookback is not None:
                rows = lookback.evaluate(rows, windows)
            if tail is not None:
                rows = with_count_tail(tail, rows, rule, cond)
            rows = rows.with_columns(cond.alias("__cond"))
            for t, alert in self._step_rule(rule, state, rows, windows, found, at, metrics):
                changes.append((t, i, alert))
        changes.sort(key=lambda c: (c[0], c[1]))
        self.revenue.observe(metrics)  # after judging: a window's revenue is never explained by itself
        alerts = [a for _, _, a in changes]
        if self.folder is None:
            return alerts
        rows = _windows_of(alerts, found, at, self.folder.due(), self.folder.group_wait_ms)
        return self.folder.fold(alerts, rows, lambda metric, dims: _slice_values(found, metric, dims))

    def _step_rule(
        self,
        rule: Rule,
        st: _RuleState,
        rows: pl.DataFrame,
        windows: np.ndarray,
        found: Detections,
        at: _PointsAt,
        metrics: pl.DataFrame,
    ) -> Iterable[tuple[int, Alert]]:
        if rows.height:
            st.grow(int(rows.get_column("sid").max()) + 1)  # type: ignore[arg-type]
        wins = rows.get_column("window_start").to_numpy()
        sids = rows.get_column("sid").to_numpy()
        conds = rows.get_column("__cond").to_numpy()
        spans = self._spans(rule, rows)
        bounds = np.searchsorted(wins, np.concatenate([windows, [windows[-1] + WINDOW_MS]]))
        need = max(1, -(-rule.for_ms // WINDOW_MS))
        patience = max(1, -(-rule.keep_firing_for_ms // WINDOW_MS))
        changes = step_rule(
            windows, bounds, sids, conds, spans, need=need, patience=patience, confirm_span=CONFIRM_SPAN,
            confirm_minutes=CONFIRM_MINUTES, window_ms=WINDOW_MS,
            report_pending=self.on_transition is not None and need > 1,
            state=(st.run, st.quiet, st.onset, st.last_true, st.firing),
        )  # fmt: skip
        for kind, j, sid, row, onset, last_true in zip(*(c.tolist() for c in changes), strict=True):
            t = int(windows[j])
            if kind == PENDING:
                assert self.on_transition is not None
                labels = self._labels(rule, _point(found, rows, row))
                st.pending[sid] = labels
                self.on_transition(Transition(t + WINDOW_MS, "pending", labels))
            elif kind == INACTIVE:
                assert self.on_transition is not None
                labels = st.pending.pop(sid, {})
                if labels:
                    self.on_transition(Transition(t + WINDOW_MS, "inactive", labels))
            elif kind == FIRE:
                st.pending.pop(sid, {})
                alert = self._fire(rule, _point(found, rows, row), onset, t, at, metrics)
                st.alerts[sid] = alert
                yield t, alert
            else:
                firing = st.alerts.pop(sid)
                ended = Alert(
                    labels=firing.labels,
                    annotations=firing.annotations,
                    status="resolved",
                    starts_at=firing.starts_at,
                    ends_at=last_true + WINDOW_MS,
                    generator_url=firing.generator_url,
                    extra={**firing.extra, "resolved_at": t + WINDOW_MS},
                )
                yield t, ended

    @staticmethod
    def _spans(rule: Rule, rows: pl.DataFrame) -> np.ndarray:
        """Minutes each row's condition covers towards ``for``: for an anomaly rule, the minutes the detector's
        judgement pooled (``evidence_points``; 1 where it judged the point alone), since a deviation found over
        the last five minutes taken together has held, as a whole, for five minutes; 1 for the other kinds.

        ``for`` is met when the condition has held for :data:`CONFIRM_MINUTES` consecutive minutes (or ``for``,
        if shorter) and either that run or the newest judgement's span reaches ``for``."""
        if rule.kind != "anomaly" or "evidence_points" not in rows.columns:
            return np.ones(rows.height, dtype=np.int64)
        points = rows.get_column("evidence_points").fill_null(1.0).to_numpy()
        return np.maximum(np.nan_to_num(points, nan=1.0), 1.0).astype(np.int64)

    @staticmethod
    def _labels(rule: Rule, row: dict[str, object]) -> dict[str, str]:
        """The labels of a rule's alert on the series of ``row``."""
        d = dimension_set(str(row["dimset"]))
        labels = {"alertname": rule.alert, "severity": rule.severity, **rule.labels, "metric": rule.metric}
        return labels | {f: str(row[f]) for f in d.fields}

    def _fire(
        self,
        rule: Rule,
        row: dict[str, object],
        onset: int,
        t: int,
        at: _PointsAt,
        metrics: pl.DataFrame,
    ) -> Alert:
        d = dimension_set(str(row["dimset"]))
        dims = {f: str(row[f]) for f in d.fields}
        value = float(row["value"])  # type: ignore[arg-type]
        expected = float(row["expected"]) if row["expected"] is not None else float("nan")  # type: ignore[arg-type]
        lower = float(row["lower"]) if row["lower"] is not None else float("nan")  # type: ignore[arg-type]
        upper = float(row["upper"]) if row["upper"] is not None else float("nan")  # type: ignore[arg-type]
        share = METRICS[rule.metric].kind == "ratio" and rule.metric != "streams_per_listener"
        shown_lower = max(lower, 0.0)  # every catalogue metric is >= 0; shares are <= 1
        shown_upper = min(upper, 1.0) if share else upper
        band = f"band {format_value(rule.metric, shown_lower)} to {format_value(rule.metric, shown_upper)}"
        kind_notes: dict[str, str] = {}
        kind_extra: dict[str, object] = {}
        pooled = _pooled_evidence(rule, row, value, expected)
        if pooled is not None:  # the rule fired on the last minutes together: show what it fired on
            value, expected, minutes = pooled
            kind_notes["evidence"] = (
                f"per-minute mean of the last {minutes} minutes (the newest minute alone is within bounds)"
            )
            kind_extra = {"evidence_minutes": minutes}
        if rule.kind == "rate_of_change":
            base = row.get("__base")
            expected = float(base) if base is not None else float("nan")  # type: ignore[arg-type]
            ago = _duration_text(rule.change_over_ms)
            band = f"value {ago} earlier"
            kind_notes["change"] = f"{100 * float(row['__change']):+.1f}% over {ago}"  # type: ignore[arg-type]
            kind_extra = {"change": row.get("__change"), "change_over_s": rule.change_over_ms // 1000}
        elif rule.kind == "slo_burn_rate":
            budget = rule.error_budget
            burn_long, burn_short = float(row["__burn_long"]), float(row["__burn_short"])  # type: ignore[arg-type]
            pair = rule.burn_windows[int(row["__burn_pair"])]  # type: ignore[call-overload]
            value, expected = burn_long * budget, budget
            long_txt, short_txt = _duration_text(pair.long_ms), _duration_text(pair.short_ms)
            band = f"error budget of a {100 * (1 - budget):g}% objective"
            kind_notes["burn_rate"] = (
                f"{burn_long:.1f}x over {long_txt} and {burn_short:.1f}x over {short_txt}"
                f" (alerting at {pair.factor:g}x)"
            )
            kind_extra = {
                "objective": 1 - budget,
                "burn_rate_long": burn_long,
                "burn_rate_short": burn_short,
                "burn_windows_s": [pair.long_ms // 1000, pair.short_ms // 1000],
                "burn_factor": pair.factor,
            }
        direction = rule.effective_direction
        if direction == "both":
            direction = "up" if value >= expected else "down"
        labels = {"alertname": rule.alert, "severity": rule.severity, **rule.labels, "metric": rule.metric, **dims}
        contributors = top_contributors(at(rule.metric, t), rule.metric, d.name, dims, t, direction)
        revenue = self.revenue.impact(metrics, rule.metric, d.name, dims, t, value, expected)
        shown = {
            "value": format_value(rule.metric, value),
            "expected": format_value(rule.metric, expected),
            "dims": dims_text(dims),
            "metric": rule.metric,
        }
        raw = {"value": value, "expected": expected}
        annotations = {k: render(v, labels, shown, raw) for k, v in rule.annotations.items()}
        annotations.setdefault(
            "summary", f"{rule.metric} {'up' if direction == 'up' else 'down'} at {shown['dims']}: {shown['value']}"
        )
        annotations["actual"] = shown["value"]
        annotations["expected"] = f"{shown['expected']} ({band})"
        annotations.update(kind_notes)
        annotations.setdefault("runbook_url", f"{DEFAULT_RUNBOOKS}#{_anchor(rule.alert)}")
        if contributors:
            fmt = format_value
            annotations["top_contributors"] = "; ".join(
                f"{dims_text(c['dims'])}: {fmt(rule.metric, c['value'])} vs {fmt(rule.metric, c['expected'])}"
                + (f" ({100 * c['share']:.0f}% of the excess)" if c.get("share") is not None else "")
                for c in contributors
            )
        annotations.update(revenue.annotations())
        extra = {
            "rule_kind": rule.kind,
            "detector": self.detector_name if rule.kind == "anomaly" else rule.kind,
            "value": value,
            "expected": expected,
            "lower": lower,
            "upper": upper,
            "score": row.get("score"),
            "weight": row.get("weight"),
            "dimset": d.name,
            "fired_at": t + WINDOW_MS,
            "anomalous_for_s": (t + WINDOW_MS - onset) // 1000,
            "top_contributors": contributors,
            **revenue.extra(),
            **kind_extra,
        }
        return Alert(labels=labels, annotations=annotations, status="firing", starts_at=onset, extra=extra)


def _pooled_evidence(
    rule: Rule, row: Mapping[str, object], value: float, expected: float
) -> tuple[float, float, int] | None:
    """The pooled minutes' per-minute value and expected value, and how many minutes they span, where an anomaly
    rule's ``row`` fired on them and its newest point alone does not pass the rule's size guards (a surge alert
    would otherwise read "3.0/min vs 3.2 expected"); None where the point shows what fired.

    >>> from tunewatch.alert.rules import parse_rules
    >>> rule = parse_rules("groups: [{name: g, rules: [{alert: S, metric: streams, direction: up, "
    ...                    "min_ratio: 2}]}]").rules[0]
    >>> row = {"evidence_value": 9.0, "evidence_expected": 3.0, "evidence_points": 5.0}
    >>> _pooled_evidence(rule, row, 3.0, 3.2)
    (9.0, 3.0, 5)
    >>> _pooled_evidence(rule, row, 9.0, 3.2) is None  # the newest minute shows the surge itself
    True
    """
    ev, ee, points = row.get("evidence_value"), row.get("evidence_expected"), row.get("evidence_points")
    if rule.kind != "anomaly" or ev is None or ee is None or points is None:
        return None
    ev_f, ee_f, n = float(ev), float(ee), int(float(points))  # type: ignore[arg-type]
    if n <= 1 or not (math.isfinite(ev_f) and math.isfinite(ee_f) and math.isfinite(value) and math.isfinite(expected)):
        return None
    side = rule.effective_direction
    if side == "both":
        side = "up" if ev_f >= ee_f else "down"
    if _moved_enough(rule, value, expected, side) or not _moved_enough(rule, ev_f, ee_f, side):
        return None
    return ev_f, ee_f, n


def _point(found: Detections, rows: pl.DataFrame, row: int) -> dict[str, object]:
    """Row ``row`` of a rule's rows (see :meth:`Detections.rows`) with its series key (dimension set and values)."""
    point: dict[str, object] = rows.row(row, named=True)
    return point | found.key(int(point["key_id"]))  # type: ignore[call-overload]


def _windows_of(
    alerts: list[Alert], found: Detections, at: _PointsAt, due: list[tuple[str, int]], wait_ms: int
) -> pl.DataFrame:
    """The detection frame's rows that explain ``alerts``: every point of an alert's metric in the window it fired
    (or, without a firing time, the window it started), the rows :class:`IncidentFolder` weighs alerts on; and the
    rows a held notification's release drills down on: the window ``wait_ms`` (the group wait) after an alert's
    (a notification held now is due then), and for those already held (``due``: metric, last window before it
    is due), that window. Each at the batch's latest window before it, or its first when the batch starts after
    it. Without them, a release found no rows (or only the alert's window, so it was not due within the batch)
    and went to the coarse parent instead of the slice that explains it."""
    windows = found.windows()

    def near(window: int) -> int:
        i = int(np.searchsorted(windows, window, side="right")) - 1
        return int(windows[max(i, 0)])

    wanted: dict[tuple[str, int], None] = {}
    for a in alerts:
        window = int(a.extra.get("fired_at", a.starts_at + WINDOW_MS)) - WINDOW_MS
        wanted[(a.labels.get("metric", ""), window)] = None
        if wait_ms > 0 and windows.size:
            wanted[(a.labels.get("metric", ""), near(window + wait_ms))] = None
    if windows.size:
        wanted.update(((metric, near(window)), None) for metric, window in due)
    return pl.concat([at(m, w) for m, w in wanted]) if wanted else at("", 0)


class _PointsAt:
    """:meth:`Detections.at` of one evaluation, each (metric, window) made once (frames are not changed)."""

    def __init__(self, found: Detections) -> None:
        self._found = found
        self._made: dict[tuple[str, int], pl.DataFrame] = {}

    def __call__(self, metric: str, window: int) -> pl.DataFrame:
        key = (metric, int(window))
        if key not in self._made:
            self._made[key] = self._found.at(metric, key[1])
        return self._made[key]


def _slice_values(found: Detections, metric: str, dims: Mapping[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """The windows of ``found`` (ascending) and one slice's values of ``metric`` in them (NaN where it has no point:
    a track or artist no longer among the heavy hitters)."""
    windows = found.windows()
    values = np.full(windows.size, np.nan)
    points = found.points.get(metric)
    try:
        dimset = dimension_set(",".join(dims) or "global")
    except KeyError:
        return windows, values
    if points is None:
        return windows, values
    same = [pl.col("dimset") == dimset.name, *(pl.col(f) == v for f, v in dims.items())]
    ids = found.keys.with_row_index("key_id").filter(pl.all_horizontal(same)).get_column("key_id").to_numpy()
    take = np.flatnonzero(np.isin(points.key_id, ids))
    values[np.searchsorted(windows, points.window_start[take])] = points.floats["value"][take]
    return windows, values
