"""Event-time watermark and lateness, vectorised over a batch in arrival order.

The watermark is the newest accepted event time, made robust to a lone outlier: it advances to the running
maximum of the *minimum of the last ``support`` arrivals*, so one event far ahead of the rest cannot drag it
forward (``support`` events must agree). An event older than ``watermark - allowed_lateness`` at its arrival
is late.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from tunewatch.schema import FUTURE_TOLERANCE_MS
from tunewatch.validate.dedup import check_state

DEFAULT_ALLOWED_LATENESS_MS = 2 * 60 * 1000
#: layout version of :meth:`Watermark.state_dict`
STATE_VERSION: Final = 1


class Watermark:
    """Tracks the watermark across batches and flags late events.

    >>> import numpy as np
    >>> wm = Watermark(allowed_lateness_ms=1_000, support=1)
    >>> wm.late_mask(np.array([10_000, 12_000, 10_500, 9_000])).tolist(), wm.value
    ([False, False, True, True], 12000)
    """

    def __init__(self, allowed_lateness_ms: int = DEFAULT_ALLOWED_LATENESS_MS, support: int = 3) -> None:
        self.allowed_lateness_ms = allowed_lateness_ms
        self.support = max(1, support)
        self.value: int | None = None
        self._recent = np.empty(0, dtype=np.int64)  # last support-1 accepted times, arrival order

    def late_mask(self, ts: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        """Flag late events among ``ts`` (arrival order) and advance the watermark past the on-time ones."""
        if ts.size == 0:
            return np.zeros(0, dtype=bool)
        start = np.iinfo(np.int64).min if self.value is None else self.value
        seq = np.concatenate([self._recent, ts])
        k = self.support
        if seq.size >= k:
            width = seq.size - k + 1
            corroborated = seq[:width].copy()  # corroborated time after each arrival from index k-1
            for shift in range(1, k):  # the minimum of each window of k arrivals, as k-1 shifted comparisons
                np.minimum(corroborated, seq[shift : shift + width], out=corroborated)
            lead = np.full(seq.size - corroborated.size, start, dtype=np.int64)
            corroborated = np.concatenate([lead, corroborated])
        else:
            corroborated = np.full(seq.size, start, dtype=np.int64)
        running = np.maximum.accumulate(np.maximum(corroborated, start))[self._recent.size :]
        before = np.concatenate([[start], running[:-1]])  # watermark seen by each event on arrival
        late = ts < before - self.allowed_lateness_ms
        if self.value is None:
            late &= before != np.iinfo(np.int64).min
        on_time = ts[~late]
        self._recent = np.concatenate([self._recent, on_time])[-(k - 1) :] if k > 1 else self._recent[:0]
        new_value = int(running[-1])
        if new_value != np.iinfo(np.int64).min:
            self.value = new_value if self.value is None else max(self.value, new_value)
        return late

    def observe_end(self) -> None:
        """At end of stream every pending time counts: advance to the newest recent arrival."""
        if self._recent.size:
            newest = int(self._recent.max())
            self.value = newest if self.value is None else max(self.value, newest)

    def state_dict(self) -> dict[str, Any]:
        """The watermark and the recent arrival times that corroborate its next move (plain values, NumPy)."""
        return {
            "component": "Watermark",
            "version": STATE_VERSION,
            "value": self.value,
            "support": self.support,
            "recent": self._recent.copy(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume from a :meth:`state_dict` export (raises ``ValueError`` for another layout).

        The allowed lateness and support stay this object's own (configuration); the recent times are cut to
        what this support needs.
        """
        check_state(state, "Watermark", STATE_VERSION)
        value = state["value"]
        recent = np.asarray(state["recent"])
        if recent.dtype != np.int64 or recent.ndim != 1:
            raise ValueError(f"Watermark state: recent must be a 1-d int64 array, got {recent.dtype} {recent.shape}")
        self.value = None if value is None else int(value)
        self._recent = recent[-(self.support - 1) :].copy() if self.support > 1 else recent[:0].copy()


__all__ = ["DEFAULT_ALLOWED_LATENESS_MS", "FUTURE_TOLERANCE_MS", "Watermark"]
