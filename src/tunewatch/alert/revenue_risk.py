"""Revenue at risk of an alert: expected minus actual revenue of the alert's slice, per hour, in one currency.

The model (documented in docs/alerts.md, "Revenue at risk"):

* The revenue of a slice (a dimension set and its values, e.g. ``market=BR``) is what the processor computes:
  stream payouts (streams x per-stream rate of their market and tier, :class:`~tunewatch.process.revenue.RateTable`)
  plus ad revenue, ``est_revenue_micros`` per minute.
* An alert on a metric that moves revenue turns the metric's shortfall into revenue with the slice's own unit
  rate, learnt from its recent windows (payout per stream, ad revenue per ad, revenue per play, per event, per
  play that was not skipped):

  ====================================  ========================================================================
  metric                                revenue lost per minute
  ====================================  ========================================================================
  ``est_revenue_micros``, ``ad_revenue_micros``  expected - actual (already money)
  ``streams`` / ``plays`` / ``events`` / ``ads``  (expected - actual) x revenue per stream / play / event / ad
  ``failure_rate``                      (actual - expected) x attempts x revenue per play (failed plays)
  ``skip_rate``                         (actual - expected) x plays x payout per play not skipped
  ``rec_acceptance``                    (expected - actual) x recommendation plays x payout per play not skipped
  ====================================  ========================================================================

  Expected revenue of the slice = its actual revenue + that loss; revenue at risk = the loss clipped to
  [0, expected revenue], x 60 per hour. A total outage (no events at all: actual revenue 0) therefore puts the
  slice's whole expected revenue at risk. A rise (a streams surge) puts none at risk; it states the payouts on
  the excess streams instead.
* Metrics that do not move revenue by themselves (startup time, rebuffering, low quality, completion) state
  the revenue of the streams they affect (the slice's stream payouts per hour) and put none at risk; data-quality
  metrics (freshness, validation, duplicates, listeners per stream) state no revenue at all.

Unit rates are exponentially weighted over the slice's past windows, one window at a time
(:meth:`RevenueModel.observe`, called after each batch is judged; an alert's window is priced by the windows
before it, in the same batch too, never by itself or later windows, so the figure does not depend on how many
windows one pipeline step closes); a slice without history uses the current window's own rates, and for
streams the rate table's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import polars as pl

from tunewatch.process.dimensions import dimension_set
from tunewatch.process.revenue import RateTable, format_money
from tunewatch.schema import DIMENSION_FIELDS

#: unit rate → (numerator column, denominator expression's columns: (plus, minus))
UNIT_RATES: Final[dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]]] = {
    "per_stream": ("stream_revenue_micros", ("streams",), ()),
    "per_ad": ("ad_revenue_micros", ("ads",), ()),
    "per_play": ("est_revenue_micros", ("plays",), ()),
    "per_event": ("est_revenue_micros", ("events",), ()),
    "per_kept_play": ("stream_revenue_micros", ("plays",), ("skips",)),
}
#: metrics that are money already
MONEY: Final = ("est_revenue_micros", "ad_revenue_micros")
#: count metrics → the unit rate that prices one unit
COUNTS: Final = {"streams": "per_stream", "plays": "per_play", "events": "per_event", "ads": "per_ad"}
#: ratio metrics → (denominator column, sign of the harmful move, unit rate of one lost unit)
RATIOS: Final = {
    "failure_rate": ("attempts", 1.0, "per_play"),
    "skip_rate": ("plays", 1.0, "per_kept_play"),
    "rec_acceptance": ("rec_plays", -1.0, "per_kept_play"),
}
#: listening-experience metrics: no revenue at risk by themselves; the affected streams' payouts are stated
EXPERIENCE: Final = frozenset(
    {"startup_ms_p50", "startup_ms_p95", "startup_ms_p99", "rebuffer_ratio", "low_quality_share", "completion_rate"}
)
_KEY: Final = "__slice"
_SEEN: Final = "__seen"
DAY_MS: Final = 86_400_000
_SEP: Final = "\x1f"


@dataclass(frozen=True, slots=True)
class RevenueImpact:
    """What an alert means in money, per hour, in ``currency`` (``None``: the model has no figure for it).

    >>> impact = RevenueImpact("EUR", at_risk=7.8, expected=12.0, actual=4.2)
    >>> impact.annotations()["revenue_at_risk_per_hour"], impact.extra()["currency"]
    ('7.80 EUR', 'EUR')
    """

    currency: str
    at_risk: float | None = None
    expected: float | None = None
    actual: float | None = None
    affected: float | None = None
    excess_payouts: float | None = None

    def annotations(self) -> dict[str, str]:
        """Human annotations (only the figures the model has), e.g. ``revenue_at_risk_per_hour: 7.80 USD``."""
        out: dict[str, str] = {}
        money = self.currency
        if self.at_risk is not None:
            out["revenue_at_risk_per_hour"] = format_money(self.at_risk, money)
        if self.expected is not None and self.actual is not None:
            out["revenue_per_hour"] = (
                f"{format_money(self.actual, money)} vs {format_money(self.expected, money)} expected"
            )
        if self.affected is not None:
            out["revenue_affected_per_hour"] = (
                f"{format_money(self.affected, money)} (stream payouts of the affected slice; not lost by this alone)"
            )
        if self.excess_payouts is not None:
            out["excess_payouts_per_hour"] = (
                f"{format_money(self.excess_payouts, money)} (payouts on streams above expected)"
            )
        return out

    def extra(self) -> dict[str, object]:
        """Machine-readable figures for the alert's ``extra`` (per hour, currency units)."""
        return {
            "revenue_at_risk_per_hour": self.at_risk,
            "revenue_expected_per_hour": self.expected,
            "revenue_actual_per_hour": self.actual,
            "revenue_affected_per_hour": self.affected,
            "excess_payouts_per_hour": self.excess_payouts,
            "currency": self.currency,
        }


def _slice_key(frame: pl.DataFrame) -> pl.Expr:
    parts = [pl.col("dimset").cast(pl.String)]
    parts += [pl.col(f).cast(pl.String).fill_null("") if f in frame.columns else pl.lit("") for f in DIMENSION_FIELDS]
    return pl.concat_str(parts, separator=_SEP).alias(_KEY)


def slice_key(dimset: str, dims: Mapping[str, str]) -> str:
    """The key :class:`RevenueModel` keeps a slice's rates under."""
    return _SEP.join([dimset, *(dims.get(f, "") for f in DIMENSION_FIELDS)])


def _col(frame: pl.DataFrame, name: str) -> pl.Expr:
    return pl.col(name).cast(pl.Float64) if name in frame.columns else pl.lit(None, dtype=pl.Float64)


class RevenueModel:
    """Revenue rates per slice (learnt from the metric frames) and the revenue impact of alerts.

    ``alpha`` weighs each new window in the exponentially weighted unit rates.

    >>> model = RevenueModel(RateTable(currency="USD"))
    >>> metrics = pl.DataFrame({"window_start": [0], "dimset": ["market"], "market": ["BR"],
    ...                         "est_revenue_micros": [0.0], "ad_revenue_micros": [0.0]})
    >>> impact = model.impact(metrics, "ad_revenue_micros", "market", {"market": "BR"}, 0, value=0.0, expected=1e6)
    >>> impact.at_risk, impact.currency  # 1 currency unit a minute expected, none earned: 60 an hour at risk
    (60.0, 'USD')
    """

    def __init__(self, rates: RateTable | None = None, *, alpha: float = 0.2, forget_after_ms: int = DAY_MS) -> None:
        self.rates = rates if rates is not None else RateTable.configured()
        self.currency = self.rates.currency
        self.alpha = alpha
        #: slices not seen for this long are forgotten (heavy-hitter tracks come and go)
        self.forget_after_ms = forget_after_ms
        schema: dict[str, pl.DataType] = {_KEY: pl.String(), _SEEN: pl.Int64(), **{r: pl.Float64() for r in UNIT_RATES}}
        self._ref = pl.DataFrame(schema=schema)
        #: the last frame :meth:`_fresh` was asked about and its answer: one evaluation prices all its alerts
        #: against the same frame, which is then computed once (the frame is held, so its identity stays its own)
        self._fresh_of: tuple[pl.DataFrame, pl.DataFrame] | None = None

    def _fresh(self, metrics: pl.DataFrame) -> pl.DataFrame:
        """Each slice's unit rates in each window of ``metrics`` (null where the window says nothing)."""
        if self._fresh_of is not None and self._fresh_of[0] is metrics:
            return self._fresh_of[1]
        rates = []
        for rate, (num, plus, minus) in UNIT_RATES.items():
            den = sum((_col(metrics, c) for c in plus), pl.lit(0.0)) - sum(
                (_col(metrics, c) for c in minus), pl.lit(0.0)
            )
            rates.append(pl.when(den > 0).then(_col(metrics, num) / den).otherwise(None).alias(rate))
        fresh = metrics.select(_slice_key(metrics), pl.col("window_start").cast(pl.Int64).alias(_SEEN), *rates)
        self._fresh_of = (metrics, fresh)
        return fresh

    def _blend(self, ref: pl.DataFrame, fresh: pl.DataFrame) -> pl.DataFrame:
        """``ref`` with ``fresh``'s windows blended in one by one, in time order (an exponentially weighted mean
        per slice and rate, ``alpha`` per window): the same whatever number of windows one call brings."""
        if fresh.is_empty():
            return ref
        rows = pl.concat([ref.with_columns(pl.lit(-1, dtype=pl.Int64).alias("__order")),
                          fresh.with_columns(pl.col(_SEEN).alias("__order"))], how="vertical_relaxed")  # fmt: skip
        # each slice's rows in window order (the reference's first), then its slices in key order: sorting the
        # batch's rows by window alone (integers) and the few slices by key costs less than sorting by both
        return (
            rows.sort("__order", maintain_order=True)
            .group_by(_KEY, maintain_order=True)
            .agg(
                pl.col(_SEEN).max(),
                *(
                    pl.col(r).ewm_mean(alpha=self.alpha, adjust=False, ignore_nulls=True).drop_nulls().last().alias(r)
                    for r in UNIT_RATES
                ),
            )
            .sort(_KEY)
            .select(self._ref.columns)
        )

    def observe(self, metrics: pl.DataFrame) -> None:
        """Blend the unit rates of ``metrics``' windows into each slice's reference, window by window (vectorised
        over slices)."""
        if metrics.is_empty() or "dimset" not in metrics.columns:
            return
        ref = self._blend(self._ref, self._fresh(metrics))
        newest = ref.get_column(_SEEN).max()
        if newest is not None:
            ref = ref.filter(pl.col(_SEEN) >= int(newest) - self.forget_after_ms)  # type: ignore[arg-type]
        self._ref = ref

    def unit_rate(
        self,
        rate: str,
        dimset: str,
        dims: Mapping[str, str],
        row: Mapping[str, float | None],
        metrics: pl.DataFrame | None = None,
        window: int | None = None,
    ) -> float | None:
        """A slice's unit rate (micros per unit) before ``window``: its reference, with the windows of ``metrics``
        before ``window`` blended in (a step may close many windows: a window is priced by those before it, never
        by itself or later ones, whatever the step); else the current window's own, else (streams) the rate
        table's; ``None`` when nothing is known."""
        key = slice_key(dimset, dims)
        ref = self._ref.filter(pl.col(_KEY) == key)
        if metrics is not None and window is not None and not metrics.is_empty() and "dimset" in metrics.columns:
            earlier = self._fresh(metrics).filter((pl.col(_KEY) == key) & (pl.col(_SEEN) < window))
            ref = self._blend(ref, earlier)
        value = ref.get_column(rate)
        if value.len() and value[0] is not None:
            return float(value[0])
        num, plus, minus = UNIT_RATES[rate]
        parts = [row.get(c) for c in (num, *plus, *minus)]
        if all(p is not None for p in parts):
            den = sum(float(row[c] or 0.0) for c in plus) - sum(float(row[c] or 0.0) for c in minus)
            if den > 0:
                return float(row[num] or 0.0) / den
        if rate == "per_stream":
            return self.rates.per_stream(dims.get("market"), dims.get("tier", "premium"))
        return None

    def impact(
        self,
        metrics: pl.DataFrame,
        metric: str,
        dimset: str,
        dims: Mapping[str, str],
        window: int,
        value: float,
        expected: float,
    ) -> RevenueImpact:
        """The revenue impact of an alert on ``metric`` in one slice at ``window`` (see the module's model)."""
        none = RevenueImpact(self.currency)
        if metric not in MONEY and metric not in COUNTS and metric not in RATIOS and metric not in EXPERIENCE:
            return none
        row = _row(metrics, dimset, dims, window)
        if row is None and "est_revenue_micros" not in metrics.columns:
            return none  # this frame carries no revenue at all: no made-up number
        row = row or {}
        actual = float(row.get("est_revenue_micros") or 0.0)  # no row: the slice had no events, no revenue
        if metric in EXPERIENCE:
            payouts = row.get("stream_revenue_micros")
            return none if payouts is None else RevenueImpact(self.currency, affected=_per_hour(float(payouts)))
        if not (math.isfinite(value) and math.isfinite(expected)):
            return none
        if metric in MONEY:
            lost = expected - value
        elif metric in COUNTS:
            unit = self.unit_rate(COUNTS[metric], dimset, dims, row, metrics, window)
            if unit is None:
                return none
            lost = (expected - value) * unit
            if metric == "streams" and value > expected:
                return RevenueImpact(
                    self.currency, 0.0, _per_hour(actual), _per_hour(actual), excess_payouts=_per_hour(-lost)
                )
        else:
            den_col, sign, rate = RATIOS[metric]
            den, unit = row.get(den_col), self.unit_rate(rate, dimset, dims, row, metrics, window)
            if den is None or unit is None:
                return none
            lost = sign * (value - expected) * float(den) * unit
        expected_revenue = actual + max(lost, 0.0)
        at_risk = min(max(lost, 0.0), expected_revenue)
        return RevenueImpact(self.currency, _per_hour(at_risk), _per_hour(expected_revenue), _per_hour(actual))


def _per_hour(micros_per_minute: float) -> float:
    return micros_per_minute * 60 / 1e6


def _row(metrics: pl.DataFrame, dimset: str, dims: Mapping[str, str], window: int) -> dict[str, float | None] | None:
    """The slice's metric row at ``window`` (numeric columns), or None when the slice had no events then."""
    if metrics.is_empty() or "dimset" not in metrics.columns or "window_start" not in metrics.columns:
        return None
    fields = dimension_set(dimset).fields
    if any(f not in metrics.columns for f in fields):
        return None
    # the window first (an integer test over the batch's rows), then the slice's text tests on that window's rows
    cond = pl.col("dimset") == dimset
    for f in fields:
        cond &= pl.col(f) == dims.get(f)
    rows = metrics.filter(pl.col("window_start") == window).filter(cond)
    if rows.is_empty():
        return None
    numeric = rows.select(c for c, t in rows.schema.items() if t.is_numeric()).row(0, named=True)
    return {k: None if v is None else float(v) for k, v in numeric.items()}
