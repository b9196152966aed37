"""Monitor: tunewatch's own Prometheus metrics (pipeline health, business KPIs), dashboards and profiling.

Imports ``process`` (result types); nothing imports it except the shells (cli, server). ``dashboards`` and
``profiling`` are imported on demand (``profiling`` needs the optional ``pyinstrument``).
"""

from tunewatch.monitor.cardinality import OTHER, CappedLabel, TopNLabel
from tunewatch.monitor.prometheus import STAGES, PrometheusMetricsManager

__all__ = ["OTHER", "STAGES", "CappedLabel", "PrometheusMetricsManager", "TopNLabel"]
