"""A replay job built from what a user names — rule file, validation rules, detector, quarantine database,
profile — so that ``tunewatch replay`` and ``tunewatch backtest`` only parse arguments and print.

:meth:`ReplayJob.from_files` loads and checks everything that can be wrong before any output is written;
:meth:`ReplayJob.run` builds the pipeline and replays event files through it (:func:`replay_files`).

>>> import tempfile, pathlib
>>> from tunewatch.simulate import SimulationConfig, Simulator
>>> from tunewatch.simulate.writers import write_stream
>>> events = pathlib.Path(tempfile.mkdtemp()) / "day.ndjson"
>>> write_stream(Simulator(SimulationConfig(minutes=30, events_per_minute=60, seed=1)), events) > 0
True
>>> summary = ReplayJob.from_files().run([events])
>>> summary.counters.balanced and summary.counters.accepted > 0
True
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import polars as pl

from tunewatch.alert.rules import RuleSet, load_rules
from tunewatch.detect.stage import PIPELINE_DETECTORS, DetectorFactory
from tunewatch.errors import InputError
from tunewatch.pipeline.core import Pipeline
from tunewatch.pipeline.replay import ReplaySummary, replay_files
from tunewatch.process.processor import ProcessingResult


def detector_factory(name: str) -> DetectorFactory:
    """The pipeline detector called ``name``; :class:`InputError` naming the known ones otherwise.

    >>> detector_factory("magic")
    Traceback (most recent call last):
    ...
    tunewatch.errors.InputError: unknown detector 'magic' (known: robust, ensemble)
    """
    if name not in PIPELINE_DETECTORS:
        raise InputError(f"unknown detector {name!r} (known: {', '.join(PIPELINE_DETECTORS)})")
    return PIPELINE_DETECTORS[name]


@dataclass(frozen=True, slots=True)
class ReplayJob:
    """How to replay: the rules, validation rules, detector, where rejected events are kept (a quarantine
    database), whether to profile, and who else receives each batch's closed windows (``on_metrics``)."""

    rules: RuleSet
    detector: DetectorFactory
    validation_rules: Path | None = None
    quarantine_db: Path | None = None
    profile: Path | None = None
    on_metrics: Callable[[ProcessingResult, pl.DataFrame], None] | None = None

    @classmethod
    def from_files(
        cls,
        *,
        rules: Path | None = None,
        validation_rules: Path | None = None,
        detector: str = "robust",
        quarantine_db: Path | None = None,
        profile: Path | None = None,
        on_metrics: Callable[[ProcessingResult, pl.DataFrame], None] | None = None,
    ) -> ReplayJob:
        """The job, with the rule file loaded (the built-in pack without one) and the detector looked up; raises
        :class:`~tunewatch.errors.ConfigError` / :class:`InputError` naming what is wrong."""
        return cls(load_rules(rules), detector_factory(detector), validation_rules, quarantine_db, profile, on_metrics)

    def pipeline(self) -> Pipeline:
        """A fresh pipeline of this job."""
        return Pipeline(self.rules, validation_rules=self.validation_rules, detector_factory=self.detector,
                        on_metrics=self.on_metrics)  # fmt: skip

    def run(
        self,
        events: Sequence[Path],
        *,
        alerts_out: IO[bytes] | None = None,
        quarantine_out: IO[bytes] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> ReplaySummary:
        """Replay ``events`` in order; alert changes (NDJSON) to ``alerts_out``, rejected events to
        ``quarantine_out`` and the quarantine database; ``progress`` gets the events received after each batch."""
        with contextlib.ExitStack() as stack:
            if self.profile is not None:
                from tunewatch.monitor.profiling import profile_to

                stack.enter_context(profile_to(self.profile))
            pipeline = self.pipeline()
            if self.quarantine_db is not None:
                from tunewatch.quarantine.store import QuarantineStore

                store = stack.enter_context(contextlib.closing(QuarantineStore(self.quarantine_db)))
                pipeline.on_rejected = store.add
            return replay_files(events, self.rules, alerts_out=alerts_out, quarantine_out=quarantine_out,
                                progress=progress, pipeline=pipeline)  # fmt: skip


__all__ = ["ReplayJob", "detector_factory"]
