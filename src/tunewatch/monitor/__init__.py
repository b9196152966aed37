"""Monitor: tunewatch's own Prometheus metrics (pipeline health and business KPIs), health checks.

Imports ``process`` (result types, metric catalogue); nothing imports it except the shells (cli, server).
"""

from tunewatch.monitor.prometheus import PrometheusMetricsManager

__all__ = ["PrometheusMetricsManager"]
