"""One simulated minute of traffic, as integer-coded columns (NumPy), incidents applied.

The minute is drawn in two passes: first *who* listens (market, platform, tier, CDN, source, listener,
track, event type), then *what happened* (time played, skip, time to first audio, rebuffering, bitrate,
errors, ad revenue). Incidents act between the passes by changing event types and the outcome parameters,
so their effects obey the same distributions as normal traffic. :data:`NIL` stands for an absent value.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from tunewatch.schema import PLATFORMS, REASONS_END, SOURCES, TIERS
from tunewatch.simulate.codes import NIL
from tunewatch.simulate.incidents import LATE_DELAY_MAX, LATE_DELAY_MIN, MINUTE_MS, Incident
from tunewatch.simulate.world import (
    BOTS_PER_MARKET,
    CODEC_MIX,
    ERROR_CODES,
    N_TRACKS,
    OBSCURE_TRACKS,
    SKIP_BY_SOURCE,
    SOURCE_MIX,
    STARTUP_BY_PLATFORM,
    World,
)

Columns = dict[str, np.ndarray]

PLAY, ERROR, AD = 0, 1, 2
FREE: Final = TIERS.index("free")
PREMIUM: Final = TIERS.index("premium")
REC: Final = SOURCES.index("recommendation")
R_TRACKDONE, R_FWD, R_BACK = (REASONS_END.index(r) for r in ("trackdone", "fwdbtn", "backbtn"))
#: Reasons a non-skipped, unfinished play ends with (order of schema.REASONS_END).
PARTIAL_END_MIX: Final = np.array([0.0, 0.30, 0.04, 0.34, 0.10, 0.04, 0.08, 0.10])
ERROR_MIX: Final = np.array([0.40, 0.20, 0.10, 0.10, 0.10, 0.10])
CDN_STARTUP: Final = np.array([1.0, 1.05, 1.1, 1.3])
BASE_ERROR_RATE: Final = 0.006
AD_SHARE_OF_FREE: Final = 0.18
IP_POOL: Final = 256  # addresses in the documentation range 203.0.113.0/24 (RFC 5737)


def _pick(rng: np.random.Generator, cdf_rows: np.ndarray) -> np.ndarray:
    """One categorical draw per row from per-row cumulative distributions (shape (n, k))."""
    u = np.asarray(rng.random(cdf_rows.shape[0]))
    return np.minimum((u[:, None] > cdf_rows).sum(axis=1), cdf_rows.shape[1] - 1)


def _pick_global(rng: np.random.Generator, probs: np.ndarray | tuple[float, ...], n: int) -> np.ndarray:
    cdf = np.cumsum(np.asarray(probs, dtype=np.float64))
    return np.minimum(np.searchsorted(cdf / cdf[-1], rng.random(n), side="right"), len(cdf) - 1)


def who(world: World, rng: np.random.Generator, minute_ms: int, counts: np.ndarray) -> Columns:
    """Draw the listeners and what they play for ``counts[m]`` events in each market ``m``."""
    n = int(counts.sum())
    market = np.repeat(np.arange(len(counts)), counts)
    tier = _pick(rng, np.cumsum(world.tier_mix, axis=1)[market])
    etype = np.where(rng.random(n) < BASE_ERROR_RATE, ERROR, PLAY)
    etype[(tier == FREE) & (rng.random(n) < AD_SHARE_OF_FREE)] = AD
    track = np.minimum(np.searchsorted(world.track_cdf, rng.random(n)), len(world.track_cdf) - 1)
    heavy = rng.random(n) ** 2  # a few listeners listen a lot
    return {
        "ts": minute_ms + rng.integers(0, MINUTE_MS, n),
        "market": market,
        "platform": _pick(rng, np.cumsum(world.platform_mix, axis=1)[market]),
        "tier": tier,
        "cdn": _pick(rng, np.cumsum(world.cdn_mix, axis=1)[market]),
        "source": _pick_global(rng, SOURCE_MIX, n),
        "user": world.user_offset[market] + (heavy * world.user_count[market]).astype(np.int64),
        "track": track,
        "etype": etype,
        "bot": np.zeros(n, dtype=bool),
    }


def bot_tracks(inc: Incident) -> np.ndarray | None:
    """The tracks a bot farm plays: one new track, an unseen artist's tracks, or (None) obscure catalogue ones."""
    if "track" in inc.codes:
        return np.array([inc.codes["track"]])
    if "artist" in inc.codes:
        return np.arange(N_TRACKS - OBSCURE_TRACKS, N_TRACKS)
    return None


def bots(
    world: World, rng: np.random.Generator, minute_ms: int, market: int, n: int, tracks: np.ndarray | None = None
) -> Columns:
    """A bot farm's plays: a few accounts, a handful of obscure tracks (or ``tracks``), each played just past 30 s."""
    return {
        "ts": minute_ms + rng.integers(0, MINUTE_MS, n),
        "market": np.full(n, market),
        "platform": np.where(rng.random(n) < 0.7, PLATFORMS.index("web"), PLATFORMS.index("desktop")),
        "tier": np.full(n, PREMIUM),
        "cdn": _pick(rng, np.cumsum(world.cdn_mix, axis=1)[np.full(n, market)]),
        "source": np.full(n, SOURCES.index("playlist")),
        "user": world.user_offset[market] + world.user_count[market] + rng.integers(0, BOTS_PER_MARKET, n),
        "track": 6000 + rng.integers(0, 25, n) if tracks is None else tracks[rng.integers(0, tracks.size, n)],
        "etype": np.full(n, PLAY),
        "bot": np.ones(n, dtype=bool),
    }


def concat(parts: list[Columns]) -> Columns:
    """Concatenate column sets with the same keys."""
    parts = [p for p in parts if p and len(p["ts"])]
    if not parts:
        return {}
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def take(cols: Columns, mask: np.ndarray) -> Columns:
    """Rows of ``cols`` where ``mask`` holds."""
    return {k: v[mask] for k, v in cols.items()}


class Outcome:
    """Per-row parameters of what happens, which incidents adjust before :func:`what_happened` draws it."""

    def __init__(self, cols: Columns) -> None:
        n = len(cols["ts"])
        self.p_skip = np.asarray(SKIP_BY_SOURCE)[cols["source"]]
        self.startup_mult = np.asarray(STARTUP_BY_PLATFORM)[cols["platform"]] * CDN_STARTUP[cols["cdn"]]
        self.rebuffer_rate = np.full(n, 0.04)
        self.error_code = np.full(n, -1)  # forced error code (-1: drawn from the usual mix)
        self.keep = np.ones(n, dtype=bool)  # False: the event never happens (e.g. an ad not served)
        self.delay_min = np.zeros(n, dtype=np.int64)  # minutes by which the event reaches us late
        self.low_quality = np.zeros(n)  # probability that a play is served at a low bitrate whatever its tier


def apply_incidents(
    incidents: list[Incident], cols: Columns, out: Outcome, rng: np.random.Generator, minute_ms: int
) -> None:
    """Change event types and outcome parameters of the rows each active incident touches."""
    ts, etype = cols["ts"], cols["etype"]
    for inc in incidents:
        if not inc.active(minute_ms):
            continue
        live = (ts >= inc.start) & (ts < inc.end)
        if inc.kind == "cdn_outage":
            hit = live & (cols["market"] == inc.codes["market"]) & (cols["cdn"] == inc.codes["cdn"]) & (etype != AD)
            fail = hit & (rng.random(len(ts)) < 0.45)
            etype[fail] = ERROR
            out.error_code[fail] = np.where(rng.random(int(fail.sum())) < 0.6, 1, 0)  # CDN_5XX / NETWORK_TIMEOUT
            out.startup_mult[hit] *= 4.0
            out.rebuffer_rate[hit] = 0.6
        elif inc.kind == "bad_encode":
            hit = live & (cols["track"] == inc.codes["track_id"]) & (etype != AD)
            fail = hit & (rng.random(len(ts)) < 0.5)
            etype[fail] = ERROR
            out.error_code[fail] = ERROR_CODES.index("DECODE_ERROR")
            out.p_skip[hit] = 0.75
        elif inc.kind == "app_regression":
            hit = live & (cols["platform"] == inc.codes["platform"]) & (etype != AD)
            out.startup_mult[hit] *= 3.0
            out.rebuffer_rate[hit] = 0.8
            crash = hit & (rng.random(len(ts)) < 0.05)
            etype[crash] = ERROR
            out.error_code[crash] = ERROR_CODES.index("APP_CRASH")
        elif inc.kind == "ad_server_failure":
            out.keep &= ~(live & (etype == AD) & (rng.random(len(ts)) < 0.9))
        elif inc.kind == "rec_regression":
            hit = live & (cols["source"] == REC)
            out.p_skip[hit] = np.maximum(out.p_skip[hit] * 2.2, 0.62)
        elif inc.kind == "late_data":
            hit = live & (cols["market"] == inc.codes["market"])
            out.delay_min[hit] = rng.integers(LATE_DELAY_MIN, LATE_DELAY_MAX + 1, int(hit.sum()))
        elif inc.kind in FAMILY_KINDS:
            _apply_family(inc, cols, out, rng, live)
        # bot_farm adds rows (see bots()); it changes no existing ones


#: Kinds of the scenario family (tunewatch.simulate.scenarios) applied by :func:`_apply_family`.
FAMILY_KINDS: Final = ("failures", "startup", "rebuffering", "low_quality", "skips", "traffic_drop", "ad_fill")
_SLICE_COLUMNS: Final = {"market": "market", "cdn": "cdn", "platform": "platform", "tier": "tier",
                         "source": "source", "track": "track"}  # fmt: skip


def _apply_family(inc: Incident, cols: Columns, out: Outcome, rng: np.random.Generator, live: np.ndarray) -> None:
    """One family incident on the rows of its slice (every code of ``inc.codes`` matches), ``magnitude`` strong."""
    hit = live.copy()
    for f, code in inc.codes.items():
        hit &= cols[_SLICE_COLUMNS[f]] == code
    etype, n, mag = cols["etype"], len(hit), inc.magnitude
    if inc.kind == "failures":
        fail = hit & (etype != AD) & (rng.random(n) < mag)
        etype[fail] = ERROR
        out.error_code[fail] = np.where(rng.random(int(fail.sum())) < 0.5, 1, 0)
    elif inc.kind == "startup":
        out.startup_mult[hit & (etype != AD)] *= mag
    elif inc.kind == "rebuffering":
        out.rebuffer_rate[hit & (etype != AD)] = mag
    elif inc.kind == "low_quality":
        out.low_quality[hit & (etype == PLAY)] = mag
    elif inc.kind == "skips":
        sel = hit & (etype == PLAY)
        out.p_skip[sel] = np.maximum(out.p_skip[sel], mag)
    elif inc.kind == "traffic_drop":
        out.keep &= ~(hit & (rng.random(n) < mag))
    elif inc.kind == "ad_fill":
        out.keep &= ~(hit & (etype == AD) & (rng.random(n) < mag))


def what_happened(world: World, cols: Columns, out: Outcome, rng: np.random.Generator) -> Columns:
    """Draw the outcome columns (schema values as integer codes / numbers; :data:`NIL` = absent)."""
    n = len(cols["ts"])
    etype = cols["etype"]
    play, err, ad = etype == PLAY, etype == ERROR, etype == AD
    duration = world.track_duration_ms[cols["track"]]
    u = rng.random(n)
    skipped = play & (u < out.p_skip)
    completed = play & ~skipped & (rng.random(n) < 0.78)
    ms_played = np.where(completed, duration, rng.integers(30_000, np.maximum(duration, 30_001)))
    ms_played = np.where(skipped, rng.integers(500, 30_000, n), ms_played)
    bot = cols["bot"]
    ms_played = np.where(bot, rng.integers(30_500, 36_000, n), ms_played)
    reason = np.where(completed, R_TRACKDONE, _pick_global(rng, PARTIAL_END_MIX, n))
    reason = np.where(skipped, np.where(rng.random(n) < 0.85, R_FWD, R_BACK), reason)
    reason = np.where(bot, REASONS_END.index("endplay"), reason)
    startup = np.clip(rng.lognormal(np.log(230.0), 0.45, n) * out.startup_mult, 15, 120_000).astype(np.int64)
    reb_count = rng.poisson(out.rebuffer_rate)
    reb_ms = np.minimum(reb_count * rng.lognormal(np.log(700.0), 0.6, n), ms_played + startup).astype(np.int64)
    paid = cols["tier"] != FREE
    bitrate = np.where(
        paid,
        np.asarray([320, 160, 96, 24])[_pick_global(rng, (0.6, 0.34, 0.05, 0.01), n)],
        np.asarray([160, 96, 24])[_pick_global(rng, (0.74, 0.21, 0.05), n)],
    )
    if out.low_quality.any():  # drawn only then, so that streams without such an incident keep their draws
        bitrate = np.where(rng.random(n) < out.low_quality, 64, bitrate)
    err_code = np.where(out.error_code >= 0, out.error_code, _pick_global(rng, ERROR_MIX, n))
    ad_rev = rng.lognormal(np.log(world.ad_rate_micros[cols["market"]]), 0.4).astype(np.int64)
    explicit_skip = rng.random(n) < 0.5  # half the clients send `skipped`, the rest leave it to inference
    has_startup = play & (rng.random(n) < 0.97)
    nil = NIL
    return {
        "ts": cols["ts"],
        "event_type": etype,
        "user_id": cols["user"],
        "market": cols["market"],
        "platform": cols["platform"],
        "tier": cols["tier"],
        "source": np.where(ad, nil, cols["source"]),
        "cdn": cols["cdn"],
        "track_id": np.where(ad, nil, cols["track"]),
        "artist_id": np.where(ad, nil, world.track_artist[cols["track"]]),
        "ms_played": np.where(play, ms_played, nil),
        "track_duration_ms": np.where(play, duration, nil),
        "reason_end": np.where(play, reason, nil),
        "skipped": np.where(play & explicit_skip, skipped.astype(np.int64), nil),
        "startup_ms": np.where(has_startup, startup, nil),
        "rebuffer_count": np.where(play, reb_count, nil),
        "rebuffer_ms": np.where(play, reb_ms, nil),
        "bitrate_kbps": np.where(play, bitrate, nil),
        "codec": np.where(play, _pick_global(rng, CODEC_MIX, n), nil),
        "error_code": np.where(err, err_code, nil),
        "ad_revenue_micros": np.where(ad, ad_rev, nil),
        "ip_addr": np.where(rng.random(n) < 0.3, rng.integers(0, IP_POOL, n), nil),
        "user_agent": np.where(rng.random(n) < 0.7, np.minimum(cols["platform"], 7), nil),
        "offline": np.where(play, (rng.random(n) < 0.03).astype(np.int64), nil),
        "shuffle": np.where(play & (rng.random(n) < 0.8), (rng.random(n) < 0.4).astype(np.int64), nil),
        "arrival": cols["ts"] + (rng.exponential(2_500, n)).astype(np.int64) + out.delay_min * MINUTE_MS,
    }
