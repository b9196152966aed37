"""The vectorised watermark agrees with its definition applied one arrival at a time."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tunewatch.validate.watermark import Watermark


def _reference_late(ts: list[int], recent: list[int], value: int | None, support: int) -> tuple[list[bool], int | None]:
    """The watermark's definition, one arrival at a time: after each arrival it may advance to the minimum of the
    last ``support`` arrivals (of this batch, after the on-time ones remembered from earlier batches)."""
    lowest = -(2**63)
    start = lowest if value is None else value
    seq = recent + ts
    mark = start
    late = []
    for i, t in enumerate(ts):
        late.append(t < mark - 1000 and not (value is None and mark == lowest))
        at = len(recent) + i
        if at >= support - 1:
            mark = max(mark, min(seq[at - support + 1 : at + 1]))
    if mark != lowest:
        value = mark if value is None else max(value, mark)
    return late, value


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.lists(st.integers(min_value=-(10**6), max_value=10**6), max_size=12), min_size=1, max_size=4),
    st.integers(min_value=1, max_value=4),
)
def test_watermark_matches_a_one_at_a_time_reference(batches: list[list[int]], support: int) -> None:
    wm = Watermark(allowed_lateness_ms=1000, support=support)
    recent: list[int] = []  # the last support - 1 on-time arrivals
    value: int | None = None
    for batch in batches:
        late = wm.late_mask(np.asarray(batch, dtype=np.int64)).tolist()
        expected, value = _reference_late(batch, recent, value, support)
        assert late == expected
        assert wm.value == value
        on_time = [t for t, is_late in zip(batch, expected, strict=True) if not is_late]
        recent = (recent + on_time)[-(support - 1) :] if support > 1 else []
