"""The detector contract: what every anomaly detector in ``tunewatch.detect`` provides.

A detector keeps the state of many series in arrays indexed by series id, so that one call updates every
series at one time step (the pipeline's hot path), and also offers a streaming form for one series.
Both forms give identical results.

Scores are in [0, 1] (1 = certainly anomalous); every score comes with the expected value and the band
(lower, upper) the detector considered normal, so that alerts can explain themselves.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(slots=True)
class Detection:
    """Detector output for a set of points (one entry per input point).

    >>> d = Detection(score=np.array([0.1, 0.9]), expected=np.array([10.0, 10.0]),
    ...               lower=np.array([8.0, 8.0]), upper=np.array([12.0, 12.0]))
    >>> (d.score > 0.5).tolist(), d.source is None
    ([False, True], True)
    """

    score: FloatArray  # anomaly score in [0, 1]; NaN while warming up or for a missing point
    expected: FloatArray  # expected value
    lower: FloatArray  # lower edge of the normal band
    upper: FloatArray  # upper edge of the normal band
    source: IntArray | None = None  # which model produced the evidence (see ``kernel.SOURCE_NAMES``), if known
    run_ms: FloatArray | None = None  # how long the series has been anomalous (0 when it is not), if known
    #: the weight the evidence rests on where that is more than the point's own (several points judged
    #: together), if the detector pools; rules' ``min_weight`` guards read it
    evidence_weight: FloatArray | None = None
    #: the observed and expected values (per point) and the excess (observed minus expected, summed over the
    #: points; for ratios in attempts) that the evidence rests on, if the detector pools; rules' guards read them
    evidence_value: FloatArray | None = None
    evidence_expected: FloatArray | None = None
    evidence_excess: FloatArray | None = None
    #: how many points (minutes) that evidence spans (1: the point alone), if the detector pools; a rule's
    #: ``for`` counts them (see :func:`tunewatch.alert.engine.condition`)
    evidence_points: FloatArray | None = None


@dataclass(slots=True)
class PointDetection:
    """Detector output for one point of one series (the streaming form).

    >>> p = PointDetection(score=0.93, expected=100.0, lower=90.0, upper=110.0, source="level", run_ms=120_000.0)
    >>> p.score > 0.5, p.source, p.run_ms / 60_000
    (True, 'level', 2.0)
    """

    score: float
    expected: float
    lower: float
    upper: float
    source: str = "none"  # the model it was judged against (``kernel.SOURCE_NAMES``); "none": not scored
    run_ms: float = 0.0  # how long the series has been anomalous


class VectorDetector(ABC):
    """A detector over many series at once.

    ``step`` receives, for one time step ``t`` (epoch ms), the ids of the series that have a point, their
    values and weights (the denominator of a ratio or the count behind a mean; 1 when not meaningful; a
    weight of 0 or a NaN value marks a missing point). It returns a :class:`Detection` aligned with ``ids``
    and updates the state of exactly those series.

    >>> from tunewatch.detect.robust import RobustLevelDetector
    >>> det: VectorDetector = RobustLevelDetector(noise="poisson", warmup=3)
    >>> ids = np.array([0, 1])
    >>> for t in range(5):  # two series in one step per minute
    ...     d = det.step(t * 60_000, ids, np.array([100.0, 5.0]), np.ones(2))
    >>> d.expected.round().tolist(), det.state_dict()["version"] == det.version
    ([100.0, 5.0], True)
    """

    #: Short name used in rule files and explanations.
    name: str = "detector"
    #: State layout version, bumped when ``state_dict`` changes shape.
    version: int = 1

    @abstractmethod
    def step(self, t: int, ids: IntArray, values: FloatArray, weights: FloatArray) -> Detection:
        """Score one time step for the given series and learn from it."""

    def update(self, t: int, value: float, weight: float = 1.0, series: int = 0) -> PointDetection:
        """Streaming form: score and learn one point of one series."""
        d = self.step(
            t,
            np.array([series], dtype=np.int64),
            np.array([value], dtype=np.float64),
            np.array([weight], dtype=np.float64),
        )
        return PointDetection(float(d.score[0]), float(d.expected[0]), float(d.lower[0]), float(d.upper[0]))

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Serialisable state (numpy arrays and scalars), with ``version``."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state produced by :meth:`state_dict` of the same version."""
