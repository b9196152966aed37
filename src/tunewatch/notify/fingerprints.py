"""Memoised alert fingerprints: the model's FNV-1a hash runs byte by byte in Python, and the pipeline asks often."""

from __future__ import annotations

from functools import lru_cache

from tunewatch.alert.model import Alert, fingerprint


@lru_cache(maxsize=65_536)
def _fingerprint(items: tuple[tuple[str, str], ...]) -> str:
    return fingerprint(dict(items))


def alert_fingerprint(alert: Alert) -> str:
    """Same value as ``alert.fingerprint``, cached by label set."""
    return _fingerprint(tuple(sorted(alert.labels.items())))
