"""tunewatch: anomaly detection and alerting for music-streaming events.

The public API is deliberately small::

    from tunewatch import (EnterpriseDataValidator, MusicDataProcessor, MusicStreamingCacheManager,
                           PrometheusMetricsManager)

    valid = EnterpriseDataValidator().validate(events)
    result = MusicDataProcessor().process(valid)
    MusicStreamingCacheManager().store(result)
    PrometheusMetricsManager().record_metrics(result)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tunewatch.version import __version__

__all__ = [
    "EnterpriseDataValidator",
    "MusicDataProcessor",
    "MusicStreamingCacheManager",
    "PrometheusMetricsManager",
    "TunewatchError",
    "__version__",
]

_LAZY = {
    "EnterpriseDataValidator": "tunewatch.validate",
    "MusicDataProcessor": "tunewatch.process",
    "MusicStreamingCacheManager": "tunewatch.cache",
    "PrometheusMetricsManager": "tunewatch.monitor",
    "TunewatchError": "tunewatch.errors",
}

if TYPE_CHECKING:
    from tunewatch.cache import MusicStreamingCacheManager
    from tunewatch.errors import TunewatchError
    from tunewatch.monitor import PrometheusMetricsManager
    from tunewatch.process import MusicDataProcessor
    from tunewatch.validate import EnterpriseDataValidator


def __getattr__(name: str) -> Any:
    """Import the public classes on first use (keeps ``import tunewatch`` and the CLI start-up fast)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tunewatch' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
