"""Explanations of detector output: expected value, band, which model fired, and for how long."""

from __future__ import annotations

import math
from dataclasses import dataclass

from tunewatch.detect.base import Detection
from tunewatch.detect.kernel import SOURCE_NAMES


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why one point was (or was not) anomalous."""

    score: float
    value: float
    expected: float
    lower: float
    upper: float
    detector: str  # "level", "seasonal", "change_point"; "none" when inside the band
    anomalous_for_ms: float  # length of the current anomalous run (0 when not anomalous)

    def text(self) -> str:
        """One line for an alert or a log."""
        if math.isnan(self.score):
            return f"value {self.value:g}: not scored (warming up or missing)"
        where = "above" if self.value > self.upper else "below" if self.value < self.lower else "inside"
        line = (
            f"value {self.value:g} {where} the band [{self.lower:g}, {self.upper:g}] "
            f"(expected {self.expected:g}; score {self.score:.2f})"
        )
        if self.detector != "none":
            line += f"; {self.detector} model fired"
            if self.anomalous_for_ms > 0:
                line += f", anomalous for {self.anomalous_for_ms / 60_000:g} min"
        return line


def explain(detection: Detection, values: list[float] | tuple[float, ...], i: int) -> Explanation:
    """The explanation of entry ``i`` of a detection (``values`` are the inputs it was computed from)."""
    src = int(detection.source[i]) if detection.source is not None else 0
    run = float(detection.run_ms[i]) if detection.run_ms is not None else 0.0
    return Explanation(
        score=float(detection.score[i]),
        value=float(values[i]),
        expected=float(detection.expected[i]),
        lower=float(detection.lower[i]),
        upper=float(detection.upper[i]),
        detector=SOURCE_NAMES.get(src, "none"),
        anomalous_for_ms=run,
    )
