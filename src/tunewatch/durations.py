"""Prometheus-style durations (``30s``, ``5m``, ``1h30m``, ``250ms``), as rule and notification files write them."""

from __future__ import annotations

import re
from typing import Any

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000, "y": 31_536_000_000}


def parse_duration_ms(value: Any) -> int:
    """Parse a Prometheus-style duration (``30s``, ``5m``, ``1h30m``, ``250ms``) or a number of seconds to ms.

    >>> parse_duration_ms("1h30m"), parse_duration_ms("250ms"), parse_duration_ms(2)
    (5400000, 250, 2000)
    """
    if isinstance(value, bool):
        raise ValueError(f"bad duration {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"bad duration {value!r}: must not be negative")
        return int(value * 1000)
    text = str(value).strip()
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_MS[m.group(2)]
        pos = m.end()
    if not text or pos != len(text):
        raise ValueError(f"bad duration {text!r}: use e.g. 30s, 5m, 4h, 1h30m")
    return int(total)
