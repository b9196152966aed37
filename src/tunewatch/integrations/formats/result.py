"""What an importer returns, and the event fields an export does not carry (market, tier, platform, user)."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from tunewatch.errors import ConfigError
from tunewatch.schema import MARKET_CODES, PLATFORMS, TIERS


@dataclass(frozen=True, slots=True)
class EventDefaults:
    """Values for §2 fields that an export lacks: ``tier`` (exports never say), ``market`` and ``platform``
    (Last.fm scrobbles carry neither), ``user`` (an export without a user name).

    >>> EventDefaults(market="br").market
    'BR'
    """

    tier: str = "premium"
    market: str | None = None
    platform: str = "other"
    user: str | None = None

    def __post_init__(self) -> None:
        if self.tier not in TIERS:
            raise ConfigError(f"tier: {self.tier!r} is not one of {', '.join(TIERS)}")
        if self.platform not in PLATFORMS:
            raise ConfigError(f"platform: {self.platform!r} is not one of {', '.join(PLATFORMS)}")
        if self.market is not None:
            market = self.market.upper()
            if market not in MARKET_CODES:
                raise ConfigError(f"market: {self.market!r} is not an ISO 3166-1 alpha-2 country code (or ZZ, unknown)")
            object.__setattr__(self, "market", market)


@dataclass(slots=True)
class ImportResult:
    """Events in the §2 schema (one row per imported record), the records left out counted by reason, and the
    events whose values the export did not give, counted by what was done (``inferred``)."""

    events: pl.DataFrame
    received: int
    skipped: dict[str, int] = field(default_factory=dict)
    inferred: dict[str, int] = field(default_factory=dict)

    @property
    def imported(self) -> int:
        """Number of events produced."""
        return self.events.height

    def summary(self) -> str:
        """One line for people: received, imported, and each skip reason."""
        parts = [f"{self.received} records", f"{self.imported} events"]
        parts += [f"{n} skipped ({reason})" for reason, n in sorted(self.skipped.items()) if n]
        parts += [f"{n} {what}" for what, n in sorted(self.inferred.items()) if n]
        return ", ".join(parts)
