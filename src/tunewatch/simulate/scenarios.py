"""A randomized family of scenarios: worlds and incidents drawn from a seed, to evaluate on streams not tuned on.

One scenario is a world (average volume 100–100,000 events/min, drawn log-uniformly; 3–30 markets) and one
incident drawn from the family below: its kind, the dimension depth it sits at (global down to one track, and
obscure entities such as an artist nobody streamed before, pushed by a bot farm), its magnitude and its
duration (10 minutes to 3 hours, log-uniform). The run holds a warm-up before the incident and a tail after
it, so that the end of the incident (when baselines could have learnt it) is observed too.

The target of an incident is chosen among the slices of its depth that carry at least
:data:`MIN_SLICE_RATE` events a minute (the low-volume range the detectors must cover); when none does, the
depth moves one step coarser.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from tunewatch.schema import PLATFORMS, SOURCES, TIERS
from tunewatch.simulate.incidents import MINUTE_MS, Incident
from tunewatch.simulate.world import CDNS, MARKETS, N_ARTISTS, N_TRACKS, OBSCURE_TRACKS, World

#: Smallest events per minute of the slice an incident targets.
MIN_SLICE_RATE: Final = 2.0
WARMUP_MINUTES: Final = 90
TAIL_MINUTES: Final = 30


@dataclass(frozen=True, slots=True)
class KindSpec:
    """One incident kind of the family: the depths it can sit at and its magnitude range."""

    depths: tuple[str, ...]
    magnitude: tuple[float, float]
    meaning: str


#: The family. Magnitudes: share of attempts failing, startup multiplier, rebuffers per play, share of plays at
#: low bitrate, skip probability, share of events lost, share of ads not served, bot streams as a multiple of
#: the market's traffic, minutes of delay.
FAMILY: Final[dict[str, KindSpec]] = {
    "failures": KindSpec(("global", "market", "platform", "cdn", "market,cdn", "track_id"), (0.08, 0.6),
                         "a share of play attempts fail"),
    "startup": KindSpec(("global", "market", "platform", "cdn", "market,cdn"), (2.0, 5.0),
                        "time to first audio multiplied"),
    "rebuffering": KindSpec(("market", "platform", "cdn", "market,cdn"), (0.4, 1.5),
                            "rebuffering events per play"),
    "low_quality": KindSpec(("market", "platform", "cdn"), (0.3, 0.9), "share of plays at a low bitrate"),
    "skips": KindSpec(("source", "track_id"), (0.55, 0.85), "skip probability"),
    "traffic_drop": KindSpec(("global", "market", "platform", "market,platform"), (0.5, 1.0),
                             "share of the slice's events lost (1: silence)"),
    "ad_fill": KindSpec(("global", "market,tier"), (0.6, 0.95), "share of ads not served (ads live in the free tier)"),
    "bot_farm": KindSpec(("market", "artist_id", "track_id"), (0.3, 1.5),
                         "bot streams, as a multiple of the market's traffic (obscure tracks)"),
    "late_data": KindSpec(("market",), (11.0, 17.0), "minutes by which the market's events arrive late"),
}  # fmt: skip
FREE: Final = TIERS.index("free")


@dataclass(frozen=True, slots=True)
class PlannedIncident:
    """An incident of the family before it is placed in a world: kind, depth, magnitude, when, how long."""

    kind: str
    depth: str
    magnitude: float
    start_minute: int
    duration_minutes: int


@dataclass(frozen=True, slots=True)
class Scenario:
    """One draw of the family: what to simulate."""

    seed: int
    events_per_minute: float
    markets: int
    minutes: int
    incident: PlannedIncident

    @property
    def band(self) -> str:
        """Volume band: ``100-1k``, ``1k-10k`` or ``10k-100k`` events/min."""
        if self.events_per_minute < 1_000:
            return "100-1k"
        return "1k-10k" if self.events_per_minute < 10_000 else "10k-100k"


def draw_scenario(seed: int, *, kinds: tuple[str, ...] = tuple(FAMILY)) -> Scenario:
    """Draw one scenario from ``seed`` (the same seed always gives the same scenario)."""
    rng = np.random.default_rng([seed, 0x5CE7])
    volume = float(np.exp(rng.uniform(np.log(100.0), np.log(100_000.0))))
    markets = int(rng.integers(3, min(30, len(MARKETS)) + 1))
    kind = kinds[int(rng.integers(0, len(kinds)))]
    spec = FAMILY[kind]
    depth = spec.depths[int(rng.integers(0, len(spec.depths)))]
    lo, hi = spec.magnitude
    magnitude = float(rng.uniform(lo, hi))
    if kind == "traffic_drop" and depth == "global":
        magnitude = min(magnitude, 0.8)  # a global silence is an outage of the whole feed, not a slice's
    duration = round(float(np.exp(rng.uniform(np.log(10.0), np.log(180.0)))))
    start = WARMUP_MINUTES + int(rng.integers(0, 15))
    incident = PlannedIncident(kind, depth, magnitude, start, duration)
    return Scenario(seed, volume, markets, start + duration + TAIL_MINUTES, incident)


def _eligible(rates: np.ndarray) -> np.ndarray:
    """Indices of slices with at least :data:`MIN_SLICE_RATE` events a minute, else the largest one."""
    ok = np.flatnonzero(rates >= MIN_SLICE_RATE)
    return ok if ok.size else np.array([int(np.argmax(rates))])


def place(plan: PlannedIncident, world: World, rng: np.random.Generator, start: int, rate: float) -> Incident:
    """The incident ``plan`` describes, in ``world`` (average ``rate`` events/min) from epoch ms ``start``."""
    share = world.market_share
    market_rate = rate * share
    platform_share = share @ world.platform_mix
    cdn_share = share @ world.cdn_mix
    track_p = np.diff(np.concatenate([[0.0], world.track_cdf[:50]]))
    depth = plan.depth

    def market() -> int:
        return int(rng.choice(_eligible(market_rate)))

    dims: dict[str, str] = {}
    codes: dict[str, int] = {}
    if depth == "market,cdn":
        pairs = market_rate[:, None] * world.cdn_mix
        flat = _eligible(pairs.ravel())
        m, c = divmod(int(rng.choice(flat)), len(CDNS))
        codes = {"market": m, "cdn": c}
    elif depth == "market,platform":
        pairs = market_rate[:, None] * world.platform_mix
        m, p = divmod(int(rng.choice(_eligible(pairs.ravel()))), len(PLATFORMS))
        codes = {"market": m, "platform": p}
    elif depth == "market,tier":
        codes = {"market": market(), "tier": FREE}
    elif depth == "market":
        codes = {"market": market()}
    elif depth == "platform":
        codes = {"platform": int(rng.choice(_eligible(rate * platform_share)))}
    elif depth == "cdn":
        codes = {"cdn": int(rng.choice(_eligible(rate * cdn_share)))}
    elif depth == "source":
        codes = {"source": SOURCES.index("recommendation")}
    elif depth == "track_id" and plan.kind == "bot_farm":  # a track nobody played before
        codes = {"market": market(), "track": N_TRACKS - 1 - int(rng.integers(0, OBSCURE_TRACKS))}
    elif depth == "track_id":  # a hit: one of the 50 most played tracks with enough plays
        codes = {"track": int(rng.choice(_eligible(rate * track_p)))}
    elif depth == "artist_id":  # the catalogue tail's artist, unseen in normal traffic
        codes = {"market": market(), "artist": N_ARTISTS}
    elif depth != "global":
        raise ValueError(f"unknown depth {depth!r}")
    if plan.kind == "bot_farm" and "market" not in codes:
        codes["market"] = market()
    tables = world.tables
    for f, code in codes.items():
        if f == "track":
            dims["track_id"] = str(tables["track_id"][code])
        elif f == "artist":
            dims["artist_id"] = str(tables["artist_id"][code])
        elif not (plan.kind == "bot_farm" and depth in ("artist_id", "track_id") and f == "market"):
            dims[f] = str(tables[f][code])
    begin = start + plan.start_minute * MINUTE_MS + int(rng.integers(0, 60)) * 1000
    end = begin + plan.duration_minutes * MINUTE_MS
    return Incident(plan.kind, dims, begin, end, codes, plan.magnitude)
