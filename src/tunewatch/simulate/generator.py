"""The simulator: a deterministic, seasonal, incident-laden stream of §2 events, generated minute by minute.

Each simulated minute draws from its own random stream (seeded by the seed and the minute), so the output
does not depend on how minutes are grouped into blocks. Rows leave a block in arrival order: event time
plus a small network delay (a few seconds; minutes for a late-data incident), so the stream is slightly
out of order as real feeds are.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
import polars as pl

from tunewatch.schema import FIELD_NAMES, VALID_SCHEMA
from tunewatch.simulate.codes import NIL
from tunewatch.simulate.dirt import choose_dirt, soil
from tunewatch.simulate.incidents import MINUTE_MS, Incident, minimum_minutes, schedule
from tunewatch.simulate.scenarios import PlannedIncident, place
from tunewatch.simulate.traffic import (
    Columns,
    Outcome,
    apply_incidents,
    bot_tracks,
    bots,
    concat,
    take,
    what_happened,
    who,
)
from tunewatch.simulate.world import DEFAULT_MARKETS, IP_TEMPLATE, MARKETS, World, build_world, market_rates

#: Default start of a simulation: a Monday, 00:00 UTC (fixed, so a seed always gives the same file).
DEFAULT_START: Final = int(datetime(2026, 1, 5, tzinfo=UTC).timestamp() * 1000)
BOT_SURGE: Final = 1.4  # a bot farm adds this many times the market's normal traffic

_TEXT_CODES: Final = ("event_type", "market", "platform", "tier", "source", "cdn", "reason_end", "codec",
                      "error_code", "user_agent", "user_id", "track_id", "artist_id")  # fmt: skip
_INT_FIELDS: Final = ("ts", "ms_played", "track_duration_ms", "startup_ms", "rebuffer_count", "rebuffer_ms",
                      "bitrate_kbps", "ad_revenue_micros")  # fmt: skip
_BOOL_FIELDS: Final = ("skipped", "offline", "shuffle")


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    """What to simulate. ``start`` is epoch ms (rounded down to a minute)."""

    start: int = DEFAULT_START
    minutes: int = 1440
    seed: int = 7
    events_per_minute: float = 2000.0
    warmup_minutes: int | None = None  # default: an eighth of the run, between 30 and 180 minutes
    incident_spacing_minutes: int | None = None  # default: the run after warm-up split in 7 equal slots
    incidents: bool = True
    dirty_rate: float = 0.001
    duplicate_rate: float = 0.001
    markets: int = DEFAULT_MARKETS  # the largest N markets of world.MARKETS
    #: incidents of the scenario family to place instead of the seven-kind schedule (see simulate.scenarios)
    plan: tuple[PlannedIncident, ...] = ()

    @property
    def warmup(self) -> int:
        """Minutes before the first incident."""
        if self.warmup_minutes is not None:
            return self.warmup_minutes
        return int(min(180, max(30, self.minutes // 8)))


class Simulator:
    """Generates the configured stream; :attr:`incidents` says what happens when."""

    def __init__(self, config: SimulationConfig | None = None) -> None:
        self.config = config or SimulationConfig()
        c = self.config
        if c.minutes <= 0:
            raise ValueError("minutes must be positive")
        if c.events_per_minute <= 0:
            raise ValueError("events_per_minute must be positive")
        if not 1 <= c.markets <= len(MARKETS):
            raise ValueError(f"markets must be between 1 and {len(MARKETS)}")
        self.start = c.start // MINUTE_MS * MINUTE_MS
        self.world: World = build_world(c.seed, c.markets)
        place_rng = np.random.default_rng([c.seed, 0x91A7])
        self.schedule: list[Incident] = (
            [place(p, self.world, place_rng, self.start, c.events_per_minute) for p in c.plan]
            if c.plan and c.incidents
            else schedule(
                self.world,
                seed=c.seed,
                start=self.start,
                minutes=c.minutes,
                warmup=c.warmup,
                spacing=c.incident_spacing_minutes,
            )
            if c.incidents
            else []
        )
        #: why there are no incidents, when there are none (empty otherwise)
        self.no_incidents_reason = ""
        if not self.schedule:
            self.no_incidents_reason = (
                "incidents were turned off" if not c.incidents else
                f"a run of {c.minutes} minutes has no room for one after its {c.warmup}-minute warm-up "
                f"(it needs at least {minimum_minutes(c.warmup)} minutes; see --warmup)"
            )  # fmt: skip
        #: True: every text value is a plain token needing no JSON escaping (checked once, on the world's tables).
        self.plain_text = all(not t.str.contains(r'["\\\x00-\x1f\x7f]').any() for t in self.world.tables.values())
        self.generated = 0
        self.duplicates = 0
        self.dirty = 0

    @property
    def incidents(self) -> list[dict[str, Any]]:
        """Labels-file entries of the scheduled incidents."""
        return [inc.label() for inc in self.schedule]

    def labels(self) -> dict[str, Any]:
        """The labels file's content (incidents plus what was generated, for reference)."""
        c = self.config
        return {
            "incidents": self.incidents,
            "seed": c.seed,
            "start": datetime.fromtimestamp(self.start / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "minutes": c.minutes,
            "events_per_minute": c.events_per_minute,
            "events": self.generated,
            "dirty": self.dirty,
            "duplicates": self.duplicates,
        }

    def blocks(self, minutes_per_block: int = 60) -> Iterator[pl.DataFrame]:
        """Yield the stream in arrival order, ``minutes_per_block`` simulated minutes per frame."""
        pending: list[Columns] = []  # events that reach us later than their minute (late data)
        block: list[Columns] = []
        for i in range(self.config.minutes):
            minute_ms = self.start + i * MINUTE_MS
            now, later = self._minute(i, minute_ms)
            if later:
                pending.append(later)
            if pending:
                due_ms = minute_ms + MINUTE_MS
                waiting = concat(pending)
                is_due = waiting["arrival"] < due_ms
                now = concat([now, take(waiting, is_due)])
                pending = [take(waiting, ~is_due)] if not is_due.all() else []
            if now:
                order = np.argsort(now["arrival"], kind="stable")  # arrival order within the minute
                now = {k: v[order] for k, v in now.items()}
            block.append(now)
            if len(block) >= minutes_per_block:
                yield self._frame(concat(block))
                block = []
        leftovers = concat([*block, *pending])
        if leftovers:
            yield self._frame(leftovers)

    def _minute(self, i: int, minute_ms: int) -> tuple[Columns, Columns]:
        """The minute's events: those that arrive in time, and those that arrive late."""
        c = self.config
        rng = np.random.default_rng([c.seed, i])
        rates = market_rates(self.world, minute_ms, c.events_per_minute)
        parts = [who(self.world, rng, minute_ms, rng.poisson(rates))]
        for inc in self.schedule:
            if inc.kind == "bot_farm" and inc.active(minute_ms):
                m = inc.codes["market"]
                surge = inc.magnitude or BOT_SURGE
                extra = bots(self.world, rng, minute_ms, m, int(rng.poisson(surge * rates[m])), bot_tracks(inc))
                parts.append(take(extra, (extra["ts"] >= inc.start) & (extra["ts"] < inc.end)))
        cols = concat(parts)
        n = len(cols["ts"])
        outcome = Outcome(cols)
        apply_incidents(self.schedule, cols, outcome, rng, minute_ms)
        out = what_happened(self.world, cols, outcome, rng)
        out["event_no"] = np.arange(n, dtype=np.int64)
        out["minute"] = np.full(n, i, dtype=np.int64)
        dirt = choose_dirt(rng, n, c.dirty_rate)
        soil(out, dirt, self.world.good_sizes)
        if not outcome.keep.all():
            out = take(out, outcome.keep)
        dup = rng.random(len(out["ts"])) < c.duplicate_rate
        copies = take(out, dup)
        copies["arrival"] = copies["arrival"] + rng.integers(100, 30_000, len(copies["arrival"]))
        out = concat([out, copies])
        self.generated += len(out["ts"])
        self.duplicates += int(dup.sum())
        self.dirty += int((dirt[outcome.keep] >= 0).sum())
        late = out["arrival"] >= minute_ms + 2 * MINUTE_MS
        if not late.any():
            return out, {}
        return take(out, ~late), take(out, late)

    def _frame(self, cols: Columns) -> pl.DataFrame:
        """Columns (integer codes, already in arrival order) → a frame of §2 fields."""
        raw = pl.DataFrame(cols).drop("arrival")
        tables = self.world.tables
        present = {name: pl.when(pl.col(name) != NIL) for name in cols}
        event_id = pl.format("e{}-{}-{}", pl.lit(self.config.seed), pl.col("minute"), pl.col("event_no"))
        exprs: list[pl.Expr] = [
            pl.when(pl.col("long_id")).then(event_id + "x" * 64).otherwise(event_id).alias("event_id"),
            pl.format("s-{}-{}", pl.col("user_id"), pl.col("ts") // 1_800_000).alias("session_id"),
            present["ip_addr"].then(pl.format(IP_TEMPLATE, pl.col("ip_addr"))).alias("ip_addr"),
        ]
        exprs += [pl.lit(tables[name]).gather(present[name].then(pl.col(name))).alias(name) for name in _TEXT_CODES]
        exprs += [present[name].then(pl.col(name)).alias(name) for name in _INT_FIELDS]
        exprs += [present[name].then(pl.col(name) == 1).alias(name) for name in _BOOL_FIELDS]
        return raw.select(*exprs).select(FIELD_NAMES).cast(VALID_SCHEMA)
