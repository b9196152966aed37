"""Conventions of the simulator's integer-coded columns."""

from __future__ import annotations

from typing import Final

import numpy as np

#: Marker of an absent value in coded columns (an int field may legitimately hold -1 in a dirty row).
NIL: Final = np.int64(-(2**62))
