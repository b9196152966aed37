"""Replay: event files in, alert state changes out, as fast as the pipeline goes (event time)."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import msgspec
import polars as pl

from tunewatch.alert.model import Alert
from tunewatch.alert.rules import RuleSet
from tunewatch.detect.detections import Detections
from tunewatch.detect.stage import EntityPrior
from tunewatch.ingest.read_ahead import read_ahead
from tunewatch.ingest.readers import DEFAULT_CHUNK_BYTES, read_events
from tunewatch.pipeline.core import Pipeline, PipelineCounters
from tunewatch.process.processor import ProcessingResult
from tunewatch.validate.validator import ValidationResult


@dataclass(slots=True)
class ReplaySummary:
    """Totals of one replay."""

    counters: PipelineCounters
    seconds: float
    files: list[str]
    alerts: list[Alert] = field(default_factory=list)
    series: int = 0

    @property
    def events_per_second(self) -> float:
        """Received events per wall-clock second."""
        return self.counters.received / self.seconds if self.seconds > 0 else 0.0


def replay_files(
    paths: Sequence[Path | str],
    rules: RuleSet | None = None,
    *,
    alerts_out: IO[bytes] | None = None,
    quarantine_out: IO[bytes] | None = None,
    progress: Callable[[int], None] | None = None,
    pipeline: Pipeline | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    read_ahead_thread: bool = True,
) -> ReplaySummary:
    """Replay ``paths`` in order through one pipeline; write alert changes (NDJSON) to ``alerts_out``.

    ``progress`` is called with the number of events received after each batch. Each batch is about
    ``chunk_bytes`` of the file and one pipeline step, closing every window the watermark passes (at low volume,
    hundreds of windows per step); the alerts do not depend on it. The next batch is read, decoded and validated
    in a background thread while the later stages work on the current one (:func:`read_ahead`; validation keeps
    the batches' order, and only that thread touches the validator until the end of the files); with
    ``read_ahead_thread=False`` every stage runs in the caller's thread, one batch after the other (same alerts).
    Likewise processing (aggregating the windows a batch closes) and detection run in a thread each, a batch
    ahead of the next stage, while the caller's thread finds the alerts (each stage's state is touched by its
    thread only until the end of the files; the detection stage starts new entity series from the heavy hitters
    as they were after its batch, not as the processing thread has moved them on since). A program that ends with
    its replay exits sooner if it calls :func:`~tunewatch.pipeline.process_exit.collect_then_freeze_at_exit` (the
    ``replay`` command does; a library call leaves the process's collector alone).
    """
    encoder = msgspec.json.Encoder()
    collected: list[Alert] = []

    pipe = pipeline or Pipeline(rules)
    previous_alert, previous_rejected = pipe.on_alert, pipe.on_rejected  # callbacks the caller set stay in place

    def on_alert(alert: Alert) -> None:
        collected.append(alert)
        if previous_alert is not None:
            previous_alert(alert)
        if alerts_out is not None:
            alerts_out.write(encoder.encode(alert.to_dict()) + b"\n")

    def on_rejected(rejected: pl.DataFrame) -> None:
        if previous_rejected is not None:
            previous_rejected(rejected)
        if quarantine_out is None:
            return
        for row in rejected.iter_rows(named=True):
            record = {
                "source": row["source"],
                "line_no": row["line_no"],
                "event_id": row["event_id"],
                "reasons": row["reasons"],
                "raw": row["raw"].decode("utf-8", errors="backslashreplace"),
            }
            quarantine_out.write(encoder.encode(record) + b"\n")

    pipe.on_alert = on_alert
    pipe.on_rejected = on_rejected
    started = time.perf_counter()
    for path in paths:
        results = (pipe.validate(batch) for batch in read_events(path, chunk_bytes=chunk_bytes))
        if not read_ahead_thread:
            for result in results:
                with pipe.stage_timer("ingest"):
                    pipe.apply(result)
                if progress is not None:
                    progress(result.received)
            continue
        # four stages in step, each in its own thread: while this batch's alerts are found, the next one's
        # detections, the windows the one after closes are aggregated, and the next is read, decoded and validated
        for result, processed, found in read_ahead(_detected(pipe, read_ahead(_processed(pipe, read_ahead(results))))):
            with pipe.stage_timer("ingest"):
                pipe.account(result)
                pipe.alert(result, processed, found)
            if progress is not None:
                progress(result.received)
    pipe.finish()
    return ReplaySummary(
        counters=pipe.counters,
        seconds=time.perf_counter() - started,
        files=[str(p) for p in paths],
        alerts=collected,
        series=pipe.detection.series_count,
    )


def _processed(
    pipe: Pipeline, results: Iterator[ValidationResult]
) -> Generator[tuple[ValidationResult, ProcessingResult, EntityPrior], None, None]:
    """Each validated batch with the windows it closes, aggregated, and the entity priors as they are then."""
    for result in results:
        processed = pipe.process(result)
        yield result, processed, pipe.processor.entity_prior_snapshot()


def _detected(
    pipe: Pipeline, processed: Iterator[tuple[ValidationResult, ProcessingResult, EntityPrior]]
) -> Generator[tuple[ValidationResult, ProcessingResult, Detections], None, None]:
    """Each processed batch with its detections."""
    for result, closed, prior in processed:
        yield result, closed, pipe.detect(closed, prior)
