"""Per-stream revenue rates by market and tier, used for ``est_revenue_micros`` and revenue at risk."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import polars as pl
import yaml

from tunewatch.errors import ConfigError

#: Default payout per stream in micro-units of currency, by tier (roughly public per-stream averages).
DEFAULT_TIER_RATES: Final = {"premium": 4000, "family": 3200, "duo": 3600, "student": 2400, "free": 1200}
#: Market multipliers on the tier rate (purchasing-power-like); markets not listed use 1.0 x ``default``.
DEFAULT_MARKET_FACTORS: Final = {
    "US": 1.0,
    "GB": 0.95,
    "DE": 0.9,
    "FR": 0.85,
    "SE": 0.9,
    "NL": 0.9,
    "CA": 0.85,
    "AU": 0.85,
    "JP": 0.9,
    "IT": 0.7,
    "ES": 0.7,
    "PL": 0.45,
    "KR": 0.6,
    "BR": 0.3,
    "MX": 0.3,
    "AR": 0.2,
    "TR": 0.2,
    "ID": 0.15,
    "IN": 0.1,
    "ZA": 0.3,
}


@dataclass(slots=True)
class RateTable:
    """Per-stream rate = tier rate x market factor (micros). Load overrides from YAML with :meth:`from_yaml`."""

    tier_rates: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_TIER_RATES))
    market_factors: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MARKET_FACTORS))
    default_factor: float = 0.5

    @classmethod
    def from_yaml(cls, path: Path) -> RateTable:
        """Read ``tier_rates``, ``market_factors`` and ``default_factor`` from a YAML file."""
        try:
            data = yaml.safe_load(path.read_text()) or {}
            return cls(
                tier_rates={str(k): int(v) for k, v in data.get("tier_rates", DEFAULT_TIER_RATES).items()},
                market_factors={
                    str(k): float(v) for k, v in data.get("market_factors", DEFAULT_MARKET_FACTORS).items()
                },
                default_factor=float(data.get("default_factor", 0.5)),
            )
        except (OSError, yaml.YAMLError, AttributeError, TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: invalid rate table ({exc})") from exc

    def rate_expr(self) -> pl.Expr:
        """Per-stream rate of each event (micros) as a Polars expression over ``market`` and ``tier``."""
        tier = pl.col("tier").replace_strict(self.tier_rates, default=0, return_dtype=pl.Float64)
        factor = pl.col("market").replace_strict(
            self.market_factors, default=self.default_factor, return_dtype=pl.Float64
        )
        return tier * factor
