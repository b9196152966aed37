"""Detectors the NAB harness can run, by name: each becomes a whole-series scorer ``(t_ms, values) → scores``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tunewatch.detect.defaults import LABEL_FREE_THRESHOLD, NAB_DEFAULT, SERIES_SHAPE, SHAPE_LABEL_FREE_THRESHOLD
from tunewatch.detect.detectors import DETECTORS, EnsembleDetector
from tunewatch.detect.kernel_detector import KernelDetector
from tunewatch.detect.robust import RobustLevelDetector
from tunewatch.evaluate.nab import SeriesScorer
from tunewatch.evaluate.nab_score import FloatArray
from tunewatch.evaluate.peers import windowed_gaussian


def _kernel_scorer(factory: Callable[[], KernelDetector]) -> SeriesScorer:
    def score(t_ms: np.ndarray, values: FloatArray) -> FloatArray:
        return factory().chunk(t_ms, values).score

    return score


def _null(t_ms: np.ndarray, values: FloatArray) -> FloatArray:
    return np.zeros(values.size)


def _robust(t_ms: np.ndarray, values: FloatArray) -> FloatArray:
    """The pipeline's robust Holt detector, one point at a time (it has no chunk form: slow, for comparison)."""
    det = RobustLevelDetector()
    return np.array([det.update(int(t), float(v)).score for t, v in zip(t_ms, values, strict=True)])


def _make(cls: type[KernelDetector], settings: dict[str, Any]) -> Callable[[], KernelDetector]:
    return lambda: cls(**settings)


#: name → factory of a fresh detector (one per file: no state is shared between files)
NAB_DETECTORS: dict[str, SeriesScorer] = {
    "default": _kernel_scorer(_make(EnsembleDetector, NAB_DEFAULT)),
    "shape": _kernel_scorer(_make(EnsembleDetector, SERIES_SHAPE)),  # the default with the opt-in shape channel
    **{name: _kernel_scorer(_make(cls, {})) for name, cls in DETECTORS.items()},
    "robust": _robust,
    "windowed_gaussian": windowed_gaussian,  # NAB's baseline, for comparison
    "null": _null,
}


def nab_scorer(name: str) -> SeriesScorer:
    """The whole-series scorer registered as ``name``."""
    try:
        return NAB_DETECTORS[name]
    except KeyError:
        raise KeyError(f"unknown NAB detector {name!r}; known: {', '.join(NAB_DETECTORS)}") from None


#: Thresholds chosen without labels, for the detectors that have one: tunewatch's default (the best threshold of
#: the synthetic development suite, see ``tunewatch.detect.defaults``) and windowedGaussian's 1-in-10,000 Gaussian
#: tail (the suite's own best for it is 0.99996: the same choice); "shape", the default with the opt-in shape
#: channel, has its own, chosen like the default's.
LABEL_FREE_THRESHOLDS: dict[str, float] = {
    "default": LABEL_FREE_THRESHOLD,
    "shape": SHAPE_LABEL_FREE_THRESHOLD,
    "windowed_gaussian": 0.9999,
}
