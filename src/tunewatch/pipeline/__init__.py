"""Pipeline: wires ingest → validate → process → detect → alert for replay and for the live service.

Owns the accounting of every event (received = accepted + rejected + duplicates) and the order of stages;
the stages themselves live in their own packages.
"""

from tunewatch.pipeline.core import BatchOutcome, Pipeline, PipelineCounters
from tunewatch.pipeline.replay import ReplaySummary, replay_files

__all__ = ["BatchOutcome", "Pipeline", "PipelineCounters", "ReplaySummary", "replay_files"]
