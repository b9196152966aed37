"""The seven labelled incident kinds (ARCHITECTURE.md §6): when they happen, what they touch, how they look.

Incidents are scheduled from the seed: one of each kind, in a shuffled order, in equal slots after a warm-up
so that detectors have a baseline first. Each one is written to the labels file with the dimensions an
operator would name as its cause (``{"market": "BR", "cdn": "fastly"}`` for a CDN outage).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np

from tunewatch.schema import PLATFORMS
from tunewatch.simulate.world import CDNS, World

MINUTE_MS: Final = 60_000

KINDS: Final = (
    "cdn_outage",
    "bad_encode",
    "app_regression",
    "bot_farm",
    "ad_server_failure",
    "rec_regression",
    "late_data",
)
#: Minimum delay, in minutes, with which a late-data incident's events are finally written.
LATE_DELAY_MIN: Final = 11
LATE_DELAY_MAX: Final = 17


@dataclass(frozen=True, slots=True)
class Incident:
    """One scheduled incident: kind, dimensions, event-time span, and the codes the generator uses."""

    kind: str
    dims: dict[str, str]
    start: int  # epoch ms, inclusive
    end: int  # epoch ms, exclusive
    codes: dict[str, int] = field(default_factory=dict)  # e.g. {"market": 3, "cdn": 1}
    magnitude: float = 0.0  # how strong (family kinds; see tunewatch.simulate.scenarios); 0: the kind's default

    def active(self, minute_ms: int) -> bool:
        """True when the minute starting at ``minute_ms`` overlaps the incident."""
        return self.start < minute_ms + MINUTE_MS and minute_ms < self.end

    def label(self) -> dict[str, Any]:
        """The labels-file entry (times in RFC 3339)."""
        out: dict[str, Any] = {
            "kind": self.kind, "dims": dict(self.dims), "start": rfc3339(self.start), "end": rfc3339(self.end)
        }  # fmt: skip
        if self.magnitude:
            out["magnitude"] = round(self.magnitude, 3)
        return out


def rfc3339(ms: int) -> str:
    """UTC RFC 3339 time of epoch milliseconds, second precision."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


#: Shortest slot an incident gets (it lasts at most half of it, at least 5 minutes).
MIN_SLOT: Final = 8


def minimum_minutes(warmup: int) -> int:
    """Shortest run that holds one incident after a ``warmup``-minute warm-up."""
    return warmup + 5 + MIN_SLOT


def schedule(
    world: World,
    *,
    seed: int,
    start: int,
    minutes: int,
    warmup: int,
    spacing: int | None = None,
    kinds: tuple[str, ...] = KINDS,
) -> list[Incident]:
    """Place one incident of each kind after ``warmup`` minutes, in equal slots (or every ``spacing`` minutes).

    Incidents never overlap; each lasts 15–40 minutes (less when the slots are short). A run too short to
    give every kind a slot of :data:`MIN_SLOT` minutes after its warm-up gets as many incidents as fit (the
    first kinds of the shuffled order), and none when it is shorter than :func:`minimum_minutes`.
    """
    rng = np.random.default_rng([seed, 0x1C1D])
    order = [kinds[i] for i in rng.permutation(len(kinds))]
    available = minutes - warmup - 5
    if spacing is None:
        order = order[: max(0, min(len(order), available // MIN_SLOT))]
    slot = spacing if spacing is not None else available // max(len(order), 1)
    if slot < MIN_SLOT or not order:
        return []
    incidents = []
    for i, kind in enumerate(order):
        slot_start = warmup + i * slot
        duration = min(int(rng.integers(15, 41)), max(slot // 2, 5))
        offset = int(rng.integers(0, max(slot - duration - 3, 1)))
        begin = slot_start + offset
        if begin + duration > minutes:
            break
        # incidents start at an arbitrary second, not on a minute boundary
        begin_ms = start + begin * MINUTE_MS + int(rng.integers(0, 60)) * 1000
        dims, codes = _target(kind, world, rng)
        incidents.append(Incident(kind, dims, begin_ms, begin_ms + duration * MINUTE_MS, codes))
    return incidents


def _target(kind: str, world: World, rng: np.random.Generator) -> tuple[dict[str, str], dict[str, int]]:
    """Choose what an incident affects: big enough to matter, drawn from the seed."""
    by_size = np.argsort(-world.market_share)
    if kind == "cdn_outage":
        m = int(rng.choice(by_size[:8]))
        c = int(rng.choice(np.flatnonzero(world.cdn_mix[m] >= 0.2)))
        return {"market": world.markets[m], "cdn": CDNS[c]}, {"market": m, "cdn": c}
    if kind == "bad_encode":
        t = int(rng.integers(0, 5))
        track = str(world.tables["track_id"][t])
        return {"track_id": track}, {"track_id": t}
    if kind == "app_regression":
        p = int(rng.choice([PLATFORMS.index(x) for x in ("ios", "android", "web", "desktop")]))
        return {"platform": PLATFORMS[p]}, {"platform": p}
    if kind == "bot_farm":
        m = int(rng.choice(by_size[3:12]))
        return {"market": world.markets[m]}, {"market": m}
    if kind == "ad_server_failure":
        return {}, {}
    if kind == "rec_regression":
        return {"source": "recommendation"}, {}
    if kind == "late_data":
        m = int(rng.choice(by_size[1:10]))
        return {"market": world.markets[m]}, {"market": m}
    raise ValueError(f"unknown incident kind {kind!r}")
