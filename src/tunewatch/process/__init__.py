"""Process: turn accepted events into per-minute metric series over the §3 dimension sets.

Owns the metric catalogue, dimension sets, heavy-hitter selection, mergeable sketches and event-time
windowing. Imports :mod:`tunewatch.schema` and :mod:`tunewatch.validate` (for its result type) only.
"""

from tunewatch.process.catalogue import METRICS, MetricSpec
from tunewatch.process.dimensions import DIMENSION_SETS, DimensionSet
from tunewatch.process.processor import MusicDataProcessor, ProcessingResult

__all__ = ["DIMENSION_SETS", "METRICS", "DimensionSet", "MetricSpec", "MusicDataProcessor", "ProcessingResult"]
