"""Revenue configuration: per-stream rates by market and tier, and the currency every revenue figure is in.

The rate table prices royalty-eligible streams for ``est_revenue_micros`` (streams x rate + ad revenue) and for
revenue at risk (:mod:`tunewatch.alert.revenue_risk`). All amounts are micro-units of one currency, an ISO 4217
code shown beside every revenue figure (alerts, notifications, console, CLI, ``/metrics`` help).

Configuration (one file, one override):

* ``TUNEWATCH_RATES`` — a YAML rate table: ``tier_rates``, ``market_factors``, ``default_factor``, ``currency``;
* ``TUNEWATCH_CURRENCY`` — the currency code; it overrides the file's ``currency``; default ``USD``.

>>> configured_currency({"TUNEWATCH_CURRENCY": "eur"})
'EUR'
>>> format_money(1234.5, "SEK")
'1,234.50 SEK'
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Final

import polars as pl
import yaml

from tunewatch.errors import ConfigError

#: Currency used when none is configured.
DEFAULT_CURRENCY: Final = "USD"
#: Environment variables: the rate-table file and the currency override.
RATES_ENV: Final = "TUNEWATCH_RATES"
CURRENCY_ENV: Final = "TUNEWATCH_CURRENCY"
#: Active ISO 4217 currency codes (2024 list; funds, metals and test codes such as XAU or XTS left out).
ISO_4217: Final = frozenset(
    str.split(
        """AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN BZD CAD CDF
    CHF CLP CNY COP CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD
    HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD
    MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR
    RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD
    TZS UAH UGX USD UYU UZS VES VED VND VUV WST XAF XCD XOF XPF YER ZAR ZMW ZWL"""
    )
)


def currency_code(value: object, source: str) -> str:
    """``value`` as an ISO 4217 code (upper-cased); :class:`ConfigError` naming ``source`` when it is not one."""
    code = str(value).strip().upper()
    if code not in ISO_4217:
        raise ConfigError(f"{source}: {str(value)[:16]!r} is not an ISO 4217 currency code (e.g. USD, EUR, SEK)")
    return code


def configured_currency(env: Mapping[str, str] | None = None) -> str:
    """The currency of every revenue figure: ``TUNEWATCH_CURRENCY``, else the ``TUNEWATCH_RATES`` file's, else USD."""
    env = os.environ if env is None else env
    if env.get(CURRENCY_ENV):
        return currency_code(env[CURRENCY_ENV], CURRENCY_ENV)
    if env.get(RATES_ENV):
        return _file_table(Path(env[RATES_ENV])).currency
    return DEFAULT_CURRENCY


def format_money(amount: float, currency: str) -> str:
    """``1,234.56 USD``: two decimals, thousands separators, the ISO code after the amount."""
    return f"{amount:,.2f} {currency}"


@lru_cache(maxsize=4)
def _cached_table(path: Path, mtime_ns: int) -> RateTable:
    return RateTable.from_yaml(path)


def _file_table(path: Path) -> RateTable:
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as exc:
        raise ConfigError(f"{path} ({RATES_ENV}): cannot read the rate table ({exc.strerror or exc})") from None
    return _cached_table(path, mtime)


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
    """Per-stream rate = tier rate x market factor (micros). Load overrides from YAML with :meth:`from_yaml`.

    >>> import polars as pl
    >>> table = RateTable(tier_rates={"premium": 4000}, market_factors={"US": 1.0}, default_factor=0.5)
    >>> events = pl.DataFrame({"market": ["US", "BR"], "tier": ["premium", "premium"]})
    >>> events.select(table.rate_expr()).to_series().to_list()
    [4000.0, 2000.0]
    """

    tier_rates: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_TIER_RATES))
    market_factors: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MARKET_FACTORS))
    default_factor: float = 0.5
    #: ISO 4217 code of every amount (rates are micro-units of it)
    currency: str = DEFAULT_CURRENCY

    @classmethod
    def configured(cls, env: Mapping[str, str] | None = None) -> RateTable:
        """The table of ``TUNEWATCH_RATES`` (else the defaults), in the currency of :func:`configured_currency`."""
        env = os.environ if env is None else env
        table = _file_table(Path(env[RATES_ENV])) if env.get(RATES_ENV) else cls()
        currency = configured_currency(env)
        if currency == table.currency:
            return table
        return cls(dict(table.tier_rates), dict(table.market_factors), table.default_factor, currency)

    @classmethod
    def from_yaml(cls, path: Path) -> RateTable:
        """Read ``tier_rates``, ``market_factors``, ``default_factor`` and ``currency`` from a YAML file."""
        try:
            data = yaml.safe_load(path.read_text()) or {}
            if not isinstance(data, dict):
                raise TypeError("expected a mapping at the top level")
            return cls(
                tier_rates={str(k): int(v) for k, v in data.get("tier_rates", DEFAULT_TIER_RATES).items()},
                market_factors={
                    str(k): float(v) for k, v in data.get("market_factors", DEFAULT_MARKET_FACTORS).items()
                },
                default_factor=float(data.get("default_factor", 0.5)),
                currency=currency_code(data.get("currency", DEFAULT_CURRENCY), f"{path}: currency"),
            )
        except ConfigError:
            raise
        except (OSError, UnicodeDecodeError, yaml.YAMLError, AttributeError, TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: invalid rate table ({exc})") from exc

    def rate_expr(self) -> pl.Expr:
        """Per-stream rate of each event (micros) as a Polars expression over ``market`` and ``tier``."""
        tier = pl.col("tier").replace_strict(self.tier_rates, default=0, return_dtype=pl.Float64)
        factor = pl.col("market").replace_strict(
            self.market_factors, default=self.default_factor, return_dtype=pl.Float64
        )
        return tier * factor

    def per_stream(self, market: str | None, tier: str = "premium") -> float:
        """Rate of one stream (micros) in ``market`` and ``tier``; the table's fallback for a slice with no history."""
        factor = self.market_factors.get(market, self.default_factor) if market else 1.0
        return self.tier_rates.get(tier, 0) * factor
