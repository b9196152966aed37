"""Scenario scoring: run drawn scenarios (:mod:`tunewatch.simulate.scenarios`) through the pipeline and score them.

:func:`run_scenario` simulates one scenario in memory, runs it through a fresh pipeline with a rule pack and
scores the alerts against its labelled incident with :func:`tunewatch.evaluate.backtest.score`;
:class:`BandScore` adds runs up per volume band (recall on the right dimension, collateral alerts per
incident, false alerts per day of quiet data, median time to detect), as ``bench/incidents.py`` reports them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from tunewatch.alert.model import Alert
from tunewatch.alert.rules import load_rules
from tunewatch.evaluate.backtest import BacktestReport, Incident, incidents_from_labels, median, score
from tunewatch.pipeline.core import Pipeline
from tunewatch.simulate import SimulationConfig, Simulator
from tunewatch.simulate.scenarios import Scenario

MINUTE_MS = 60_000


@dataclass(slots=True)
class ScenarioRun:
    """One scenario run through the pipeline: its alerts, incidents, score and cost.

    >>> from tunewatch.evaluate.backtest import score
    >>> from tunewatch.simulate.scenarios import PlannedIncident
    >>> inc = Incident("failures", {"market": "BR"}, start=100 * MINUTE_MS, end=120 * MINUTE_MS)
    >>> sc = Scenario(seed=1, events_per_minute=100.0, markets=3, minutes=150,
    ...               incident=PlannedIncident("failures", "market", 0.3, 100, 20))
    >>> run = ScenarioRun(sc, [], [inc], score([], [inc], span_ms=150 * MINUTE_MS), 15_000, 150 * MINUTE_MS, 1.0)
    >>> round(run.quiet_days * 1440)  # 150 minutes less the incident and its 15-minute grace
    115
    """

    scenario: Scenario
    alerts: list[Alert]
    incidents: list[Incident]
    report: BacktestReport
    events: int
    end_ms: int  #: end of the simulated stream (epoch ms)
    seconds: float  #: wall-clock time of simulation plus pipeline

    @property
    def quiet_days(self) -> float:
        """Days of data outside the (first) incident and its grace period: where every alert is false."""
        if not self.incidents:
            return self.scenario.minutes / 1440
        inc = self.incidents[0]
        busy_min = (min(inc.end + self.report.grace_ms, self.end_ms) - inc.start) / MINUTE_MS
        return max(self.scenario.minutes - busy_min, 0.0) / 1440


def run_scenario(sc: Scenario, rules_path: Path | str | None = None, *, minutes_per_block: int = 10) -> ScenarioRun:
    """Simulate ``sc`` and run it through a fresh pipeline with the rule pack ``rules_path`` (default pack if
    None); score the alerts against the scenario's labelled incidents."""
    t0 = time.perf_counter()
    config = SimulationConfig(
        minutes=sc.minutes, seed=sc.seed, events_per_minute=sc.events_per_minute, markets=sc.markets,
        plan=(sc.incident,),
    )  # fmt: skip
    sim = Simulator(config)
    alerts: list[Alert] = []
    pipe = Pipeline(load_rules(rules_path), on_alert=alerts.append)
    events = 0
    for frame in sim.blocks(minutes_per_block=minutes_per_block):
        events += frame.height
        pipe.ingest(frame)
    pipe.finish()
    incidents = incidents_from_labels(sim.incidents)
    report = score(alerts, incidents, span_ms=sc.minutes * MINUTE_MS)
    end_ms = sim.start + sc.minutes * MINUTE_MS
    return ScenarioRun(sc, alerts, incidents, report, events, end_ms, time.perf_counter() - t0)


@dataclass(slots=True)
class BandScore:
    """Totals of the scenario runs of one volume band.

    >>> band = BandScore()
    >>> band.scenarios, band.recall, band.false_per_day, band.median_time_to_detect_s
    (0, None, 0.0, None)
    """

    scenarios: int = 0
    detected: int = 0
    collateral: int = 0
    false: int = 0
    days: float = 0.0  #: quiet days (outside incidents) over which false alerts are counted
    ttd: list[float] = field(default_factory=list)
    events: int = 0
    seconds: float = 0.0
    missed: list[str] = field(default_factory=list)

    def add(self, run: ScenarioRun) -> None:
        """Count one run (its first incident) into the totals."""
        self.scenarios += 1
        res = run.report.incidents[0]
        if res.detected_by is not None:
            self.detected += 1
        else:
            inc = res.incident
            self.missed.append(f"{inc.kind}@{','.join(f'{k}={v}' for k, v in inc.dims.items()) or 'global'}")
        if res.time_to_detect_s is not None:
            self.ttd.append(res.time_to_detect_s)
        self.collateral += len(run.report.collateral)
        self.false += len(run.report.false_alerts)
        self.days += run.quiet_days
        self.events += run.events
        self.seconds += run.seconds

    @property
    def recall(self) -> float | None:
        """Share of scenarios whose incident was detected on the right dimension in time (None when empty)."""
        return self.detected / self.scenarios if self.scenarios else None

    @property
    def collateral_per_incident(self) -> float:
        """Collateral alerts per scenario (one incident each)."""
        return self.collateral / max(self.scenarios, 1)

    @property
    def false_per_day(self) -> float:
        """False alerts per quiet day of data."""
        return self.false / self.days if self.days else 0.0

    @property
    def median_time_to_detect_s(self) -> float | None:
        """Median time to detect over the detected incidents."""
        return median(self.ttd)
