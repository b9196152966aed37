"""The rule file the server tests run with: one threshold rule that fires as soon as plays are seen."""

from __future__ import annotations

import json


def plays_seen_rules(
    *, value: float = 0, dimensions: str = "global, market", summary: str = "plays at {{ $value }}"
) -> str:
    """YAML of a ``PlaysSeen`` threshold rule (``plays > value`` on ``dimensions``, no ``for``)."""
    return f"""
groups:
  - name: test
    rules:
      - alert: PlaysSeen
        kind: threshold
        metric: plays
        op: ">"
        value: {value}
        dimensions: [{dimensions}]
        for: 0s
        annotations: {{summary: {json.dumps(summary)}}}
"""
