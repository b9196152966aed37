"""The one default configuration of the ensemble detector for NAB, tuned on the shared part of the corpus.

One configuration for every file (no per-file tuning), found by a random local search over these settings
maximising the standard-profile score of the 31 shared files (standard 60.1 / reward-low-FP 51.0 /
reward-low-FN 65.2 there).
"""

from __future__ import annotations

from typing import Any, Final

NAB_DEFAULT: Final[dict[str, Any]] = {
    "alpha": 0.1, "scale_alpha": 0.02, "clip": 1.0, "warmup": 30, "mad_cap": 2,
    "cusum_k": 2, "cusum_h": 20, "cusum_z": 4, "cusum_ref": 0.01, "fast": 0.3,
    "bins": 288, "gamma": 0.3, "slevel_gain": 0.02,
    "spread_frac": 0.0, "spread_alpha": 0.001,
    "cal": 1.0, "cal_alpha": 0.002, "cal_short": 1.0,
    "damp": 0.2, "decay": 0.998, "episode_weight": 0.5, "episode_decay": 0.99,
}  # fmt: skip
