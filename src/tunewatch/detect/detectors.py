"""The detector kinds: robust level and scale, seasonal, change point, and their ensemble.

All four run the same compiled kernel (:mod:`tunewatch.detect.kernel`) with different parts switched on, so
the ensemble costs one pass over the data, not four:

* :class:`LevelScaleDetector` — EWMA level with a Huber-clipped update and an EW mean-absolute-deviation
  scale; evidence = |residual| / scale.
* :class:`SeasonalDetector` — adds a daily (or weekly) Holt-Winters profile in local time; the forecast comes
  from the seasonal model once it has seen two periods and explains the series better than the plain level.
* :class:`ChangePointDetector` — evidence from a two-sided CUSUM of the standardised residuals only; an alarm
  re-bases the level on the recent values.
* :class:`EnsembleDetector` — the seasonal model's residual and the CUSUM, whichever is stronger (the output
  says which fired).
"""

from __future__ import annotations

from typing import Any, ClassVar

from tunewatch.detect.kernel_detector import KernelDetector


class LevelScaleDetector(KernelDetector):
    """Robust level and scale (EWMA + MAD), no seasonality, no change-point evidence.

    >>> import numpy as np
    >>> d = LevelScaleDetector(warmup=5)
    >>> out = [d.update(t * 60_000, v) for t, v in enumerate([100, 98, 103, 101, 99, 100, 102, 40])]
    >>> round(out[-1].expected), out[-1].score > 0.5, out[6].score < 0.5, out[-1].source
    (100, True, True, 'level')
    """

    name = "level"
    fixed: ClassVar[dict[str, Any]] = {"bins": 0, "use_cusum": 0.0}


class SeasonalDetector(KernelDetector):
    """Level and scale plus a seasonal profile (default: daily, 96 slots of 15 minutes, UTC).

    >>> import numpy as np
    >>> det = SeasonalDetector(warmup=5, bins=24)
    >>> hours = np.arange(24 * 7) * 3_600_000  # a week of hourly points with a daily cycle
    >>> values = 100 + 50 * np.sin(2 * np.pi * (hours % 86_400_000) / 86_400_000)
    >>> d = det.chunk(hours, values)
    >>> bool(abs(d.expected[-1] - values[-1]) < 25)  # the profile has learnt the cycle
    True
    """

    name = "seasonal"
    fixed: ClassVar[dict[str, Any]] = {"use_cusum": 0.0}

    def __init__(self, **settings: Any) -> None:
        settings.setdefault("bins", 96)
        super().__init__(**settings)


class ChangePointDetector(KernelDetector):
    """CUSUM of standardised residuals: level shifts, including slow ones a point test misses.

    >>> import numpy as np
    >>> det = ChangePointDetector(warmup=10)
    >>> x = np.r_[np.full(60, 100.0) + np.tile([1.0, -1.0], 30), np.full(30, 104.0)]  # a small, lasting shift
    >>> d = det.chunk(np.arange(90) * 60_000, x)
    >>> bool(np.nanmax(d.score[60:]) > np.nanmax(d.score[:60]))
    True
    """

    name = "changepoint"
    fixed: ClassVar[dict[str, Any]] = {"use_level": 0.0}


class EnsembleDetector(KernelDetector):
    """Seasonal residual and CUSUM together; the stronger evidence counts and is named in the output.

    >>> det = EnsembleDetector(warmup=5)
    >>> out = [det.update(t * 60_000, v) for t, v in enumerate([100, 98, 103, 101, 99, 100, 102, 40])]
    >>> out[-1].score > 0.5, out[-1].source != "none"
    (True, True)
    """

    name = "ensemble"

    def __init__(self, **settings: Any) -> None:
        settings.setdefault("bins", 96)
        super().__init__(**settings)


DETECTORS: dict[str, type[KernelDetector]] = {
    cls.name: cls for cls in (LevelScaleDetector, SeasonalDetector, ChangePointDetector, EnsembleDetector)
}
