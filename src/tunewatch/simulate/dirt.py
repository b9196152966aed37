"""Dirty rows and duplicates, as real feeds have them: each dirty row breaks exactly one §2 rule.

Which rows are dirty, and how, is decided per minute from the seed. The damage is done on the integer-coded
columns (codes of bad spellings that the world's text tables carry beside the good ones, out-of-range
numbers, absent values), so it costs next to nothing however large the stream.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from tunewatch.simulate.codes import NIL

#: Dirty-row kinds: name → the §2 rule it breaks (as the validator reports it).
DIRT_KINDS: Final = (
    ("market_lower_case", "market: unknown_country"),
    ("market_unknown", "market: unknown_country"),
    ("event_type_typo", "event_type: not_in_enum"),
    ("ms_played_negative", "ms_played: out_of_range"),
    ("startup_too_long", "startup_ms: out_of_range"),
    ("user_id_missing", "user_id: missing"),
    ("ts_far_future", "ts: future"),
    ("bitrate_too_low", "bitrate_kbps: out_of_range"),
    ("duration_zero", "track_duration_ms: out_of_range"),
    ("event_id_too_long", "event_id: too_long"),
    ("platform_unknown", "platform: not_in_enum"),
    ("tier_unknown", "tier: not_in_enum"),
)
KIND_INDEX: Final = {name: i for i, (name, _) in enumerate(DIRT_KINDS)}
FAR_FUTURE_MS: Final = 4_102_444_800_000  # 2100-01-01: always ahead of any wall clock
#: Bad spellings appended to the world's text tables (their codes follow the good values).
BAD_SPELLINGS: Final = {"market": ("XX",), "event_type": ("pley",), "platform": ("iphone",), "tier": ("gold",)}


def choose_dirt(rng: np.random.Generator, n: int, rate: float) -> np.ndarray:
    """Per-row dirt kind (index into :data:`DIRT_KINDS`) or -1 for a clean row."""
    kinds = np.full(n, -1, dtype=np.int64)
    dirty = rng.random(n) < rate
    kinds[dirty] = rng.integers(0, len(DIRT_KINDS), int(dirty.sum()))
    return kinds


def soil(cols: dict[str, np.ndarray], kinds: np.ndarray, sizes: dict[str, int]) -> None:
    """Break one rule in each row whose ``kinds`` entry names a dirt kind (in place, on coded columns).

    ``sizes`` gives the number of good values in each text table: code ``sizes[f] + j`` is the ``j``-th bad
    spelling of field ``f``; market codes ``2 * sizes["market"] + m`` are lower-case market ``m``.
    """
    cols["long_id"] = kinds == KIND_INDEX["event_id_too_long"]
    if not (kinds >= 0).any():
        return

    def rows(name: str) -> np.ndarray:
        return kinds == KIND_INDEX[name]

    r = rows("market_lower_case")
    cols["market"][r] = cols["market"][r] + sizes["market"] + len(BAD_SPELLINGS["market"])
    cols["market"][rows("market_unknown")] = sizes["market"]
    cols["event_type"][rows("event_type_typo")] = sizes["event_type"]
    r = rows("ms_played_negative")
    cols["ms_played"][r] = -np.maximum(cols["ms_played"][r], 0) - 1 - 2  # -2 and below; -1 means absent
    cols["startup_ms"][rows("startup_too_long")] = 250_000
    cols["user_id"][rows("user_id_missing")] = NIL
    cols["ts"][rows("ts_far_future")] = FAR_FUTURE_MS
    cols["bitrate_kbps"][rows("bitrate_too_low")] = 5
    cols["track_duration_ms"][rows("duration_zero")] = 0
    cols["platform"][rows("platform_unknown")] = sizes["platform"]
    cols["tier"][rows("tier_unknown")] = sizes["tier"]
