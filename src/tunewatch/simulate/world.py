"""The simulated world: markets with their local time, device/tier/CDN/source mixes, a Zipf catalogue, listeners.

Everything here is drawn once from the seed, so the same seed always describes the same world. Categorical
values are held as small string tables; generated events carry integer codes into them (columnar and fast).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import polars as pl

from tunewatch.schema import CODECS, PLATFORMS, REASONS_END, SOURCES, TIERS
from tunewatch.simulate.dirt import BAD_SPELLINGS

#: Market → (share of worldwide traffic, UTC offset in hours). Offsets are standard time (no DST).
MARKETS: Final[dict[str, tuple[float, float]]] = {
    "US": (0.21, -5), "BR": (0.09, -3), "MX": (0.06, -6), "GB": (0.07, 0), "DE": (0.07, 1),
    "FR": (0.05, 1), "SE": (0.03, 1), "NL": (0.03, 1), "ES": (0.04, 1), "IT": (0.03, 1),
    "PL": (0.03, 1), "TR": (0.02, 3), "IN": (0.05, 5.5), "ID": (0.03, 7), "JP": (0.04, 9),
    "KR": (0.02, 9), "AU": (0.03, 10), "CA": (0.03, -5), "AR": (0.03, -3), "ZA": (0.02, 2),
    # beyond the default 20: smaller markets, used by worlds of more markets (scenario family)
    "CL": (0.015, -4), "CO": (0.015, -5), "PE": (0.01, -5), "PH": (0.015, 8), "TH": (0.01, 7),
    "VN": (0.01, 7), "NO": (0.01, 1), "DK": (0.01, 1), "FI": (0.01, 2), "PT": (0.01, 0),
}  # fmt: skip
DEFAULT_MARKETS: Final = 20
#: The last tracks of the catalogue (never played in practice: the Zipf tail) belong to an artist nobody streams;
#: a bot farm on an obscure artist or track plays them (the artist is :data:`N_ARTISTS`, one past the others).
OBSCURE_TRACKS: Final = 25
CDNS: Final = ("akamai", "fastly", "cloudfront", "edge-local")
EVENT_TYPES: Final = ("play", "error", "ad")
PLATFORM_MIX: Final = (0.27, 0.38, 0.08, 0.12, 0.04, 0.04, 0.06, 0.01)  # order of schema.PLATFORMS
TIER_MIX: Final = (0.42, 0.36, 0.12, 0.06, 0.04)  # order of schema.TIERS
SOURCE_MIX: Final = (0.34, 0.14, 0.09, 0.10, 0.08, 0.20, 0.05)  # order of schema.SOURCES
#: Probability that a play from each source is skipped (recommendations and radio are skipped most).
SKIP_BY_SOURCE: Final = (0.22, 0.10, 0.14, 0.08, 0.32, 0.30, 0.20)
CODEC_MIX: Final = (0.70, 0.24, 0.03, 0.02, 0.01)  # order of schema.CODECS
#: Time-to-first-audio multiplier per platform (TVs and cars are slower).
STARTUP_BY_PLATFORM: Final = (0.9, 1.0, 1.25, 0.85, 1.6, 1.4, 1.2, 1.3)
ERROR_CODES: Final = ("NETWORK_TIMEOUT", "CDN_5XX", "DECODE_ERROR", "DRM_LICENSE", "APP_CRASH", "UNKNOWN")
USER_AGENTS: Final = (
    "Spotify/8.9.86 iOS/17.4 (iPhone15,2)",
    "Spotify/8.9.86 Android/14 (Pixel 8)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Spotify/1.2.37 Windows/10 (desktop)",
    "Spotify/1.8.0 Tizen/7.0 (SmartTV)",
    "Spotify/8.9.86 CarPlay/17.4",
    "Spotify/2.3 Sonos/15.2 (speaker)",
    "curl/8.5.0",
)
N_TRACKS: Final = 50_000
N_ARTISTS: Final = 4_000
ZIPF_S: Final = 1.1
#: Zipf–Mandelbrot offset: flattens the head so that the biggest hit has ~1.5 % of plays, not ~14 %.
ZIPF_Q: Final = 10
LISTENERS_PER_SHARE: Final = 400_000  # listener pool of a market = its traffic share x this
BOTS_PER_MARKET: Final = 40


@dataclass(frozen=True, slots=True)
class World:
    """Static description of the simulated service (drawn from the seed)."""

    markets: tuple[str, ...]
    market_share: np.ndarray  # (M,) sums to 1
    utc_offset_h: np.ndarray  # (M,)
    platform_mix: np.ndarray  # (M, P) rows sum to 1
    cdn_mix: np.ndarray  # (M, C)
    tier_mix: np.ndarray  # (M, T)
    track_cdf: np.ndarray  # (N_TRACKS,) cumulative Zipf popularity
    track_artist: np.ndarray  # (N_TRACKS,) artist index
    track_duration_ms: np.ndarray  # (N_TRACKS,)
    user_offset: np.ndarray  # (M,) first user index of each market in the user table
    user_count: np.ndarray  # (M,) regular listeners per market (bots follow them)
    ad_rate_micros: np.ndarray  # (M,) median ad revenue per impression
    tables: dict[str, pl.Series]  # code tables: column name -> string values (good ones, then bad spellings)
    good_sizes: dict[str, int]  # number of good values at the head of each table

    def market_index(self, market: str) -> int:
        """Index of ``market`` in :attr:`markets`."""
        return self.markets.index(market)


def _jitter_mix(rng: np.random.Generator, base: tuple[float, ...], n: int, concentration: float) -> np.ndarray:
    """``n`` mixes drawn around ``base`` (Dirichlet), so markets differ but stay realistic."""
    return rng.dirichlet(np.asarray(base) * concentration, size=n)


def build_world(seed: int, markets_count: int = DEFAULT_MARKETS) -> World:
    """Draw the world for ``seed`` with the ``markets_count`` largest markets (1 to ``len(MARKETS)``)."""
    if not 1 <= markets_count <= len(MARKETS):
        raise ValueError(f"markets: must be between 1 and {len(MARKETS)}, got {markets_count}")
    rng = np.random.default_rng([seed, 0x5EED])
    markets = tuple(MARKETS)[:markets_count]
    share = np.array([MARKETS[m][0] for m in markets])
    share = share / share.sum()
    offsets = np.array([MARKETS[m][1] for m in markets], dtype=np.float64)
    m = len(markets)
    cdn_mix = _jitter_mix(rng, (0.35, 0.30, 0.20, 0.15), m, 40.0)
    popularity = 1.0 / (np.arange(1, N_TRACKS + 1) + ZIPF_Q) ** ZIPF_S
    track_cdf = np.cumsum(popularity / popularity.sum())
    track_artist = rng.integers(0, N_ARTISTS, N_TRACKS)
    track_artist[:50] = np.arange(50)  # the biggest hits come from distinct artists
    track_artist[-OBSCURE_TRACKS:] = N_ARTISTS  # an artist of the catalogue's tail, unseen in normal traffic
    durations = np.clip(rng.lognormal(np.log(200_000), 0.3, N_TRACKS), 60_000, 900_000).astype(np.int64)
    users = np.maximum((share * LISTENERS_PER_SHARE).astype(np.int64), 1000)
    per_market = users + BOTS_PER_MARKET
    user_offset = np.concatenate([[0], np.cumsum(per_market)[:-1]])
    ad_rate = np.round(rng.uniform(800, 3000, m) * np.where(share > 0.05, 1.5, 1.0)).astype(np.int64)

    user_ids = pl.select(
        pl.format("user-{}", (pl.int_range(0, int(per_market.sum()), eager=True) * 7919 + 100_003) % 10**9)
    ).to_series()
    idx = pl.int_range(0, N_TRACKS, eager=True)
    tables = {
        "event_type": pl.Series([*EVENT_TYPES, *BAD_SPELLINGS["event_type"]]),
        "market": pl.Series([*markets, *BAD_SPELLINGS["market"], *(m.lower() for m in markets)]),
        "platform": pl.Series([*PLATFORMS, *BAD_SPELLINGS["platform"]]),
        "tier": pl.Series([*TIERS, *BAD_SPELLINGS["tier"]]),
        "source": pl.Series(SOURCES),
        "cdn": pl.Series(CDNS),
        "reason_end": pl.Series(REASONS_END),
        "codec": pl.Series(CODECS),
        "error_code": pl.Series(ERROR_CODES),
        "user_agent": pl.Series(USER_AGENTS),
        "user_id": user_ids,
        "track_id": pl.select(pl.format("trk-{}", idx.cast(pl.String).str.zfill(6))).to_series(),
        "artist_id": pl.select(
            pl.format("art-{}", pl.int_range(0, N_ARTISTS + 1, eager=True).cast(pl.String).str.zfill(5))
        ).to_series(),
    }
    return World(
        markets=markets,
        market_share=share,
        utc_offset_h=offsets,
        platform_mix=_jitter_mix(rng, PLATFORM_MIX, m, 200.0),
        cdn_mix=cdn_mix,
        tier_mix=_jitter_mix(rng, TIER_MIX, m, 150.0),
        track_cdf=track_cdf,
        track_artist=track_artist,
        track_duration_ms=durations,
        user_offset=user_offset,
        user_count=users,
        ad_rate_micros=ad_rate,
        tables=tables,
        good_sizes={"event_type": len(EVENT_TYPES), "market": m, "platform": len(PLATFORMS), "tier": len(TIERS)},
    )


def daily_factor(local_hour: np.ndarray) -> np.ndarray:
    """Listening by local hour of day, mean 1: a trough before dawn, a commute bump, an evening peak."""
    h = np.asarray(local_hour, dtype=np.float64)
    return 1.0 + 0.55 * np.cos(2 * np.pi * (h - 19.0) / 24.0) + 0.12 * np.cos(4 * np.pi * (h - 8.5) / 24.0)


#: Listening by local day of week (Monday first), mean about 1.
WEEKLY_FACTOR: Final = np.array([0.97, 0.97, 0.98, 0.99, 1.03, 1.05, 1.01])


def market_rates(world: World, minute_ms: int, events_per_minute: float) -> np.ndarray:
    """Expected events in the minute starting at ``minute_ms`` (UTC epoch ms) for every market."""
    local_min = minute_ms / 60_000 + world.utc_offset_h * 60
    local_hour = (local_min / 60) % 24
    # 1970-01-01 was a Thursday (Monday = 0 → Thursday = 3)
    dow = ((np.floor(local_min / 1440).astype(np.int64) + 3) % 7).astype(np.int64)
    return events_per_minute * world.market_share * daily_factor(local_hour) * WEEKLY_FACTOR[dow]


#: Addresses are drawn from the documentation ranges (RFC 5737), never real ones.
IP_TEMPLATE: Final = "203.0.113.{}"
