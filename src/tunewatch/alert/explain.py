"""Explanations attached to a firing alert: expected vs actual, top contributors, templates.

Revenue at risk has its own model: :mod:`tunewatch.alert.revenue_risk`.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Mapping
from typing import Any

import polars as pl

from tunewatch.gotemplate import KV, Template, TemplateData, TemplateError, TemplateLibrary, TemplateRenderError
from tunewatch.process.catalogue import METRICS
from tunewatch.process.dimensions import dimension_set
from tunewatch.process.revenue import configured_currency, format_money

log = logging.getLogger(__name__)


def format_value(metric: str, value: float | None, currency: str | None = None) -> str:
    """Human form of a metric value: ratios as percentages, money in currency units, counts rounded.

    Money carries its ISO 4217 code: ``currency``, else the configured one (``TUNEWATCH_CURRENCY``).
    """
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    kind = METRICS[metric].kind if metric in METRICS else "sum"
    if kind == "ratio" and metric != "streams_per_listener":
        return f"{100 * value:.2f}%"
    if metric.endswith("_micros"):
        return format_money(value / 1e6, currency or configured_currency())
    if METRICS.get(metric) is not None and METRICS[metric].unit == "ms":
        return f"{value:,.0f} ms"
    return f"{value:,.1f}" if abs(value) < 100 else f"{value:,.0f}"


def dims_text(dims: Mapping[str, str]) -> str:
    """``market=BR, cdn=edge-2`` (``global`` when there is no dimension)."""
    return ", ".join(f"{k}={v}" for k, v in dims.items()) or "global"


#: the template variables of a rule annotation (Prometheus' plus tunewatch's $expected, $dims and $metric)
TEMPLATE_VARIABLES = ("$labels", "$value", "$expected", "$dims", "$metric", "$externalLabels", "$externalURL")
_RULE_FIELDS = ("Labels", "Value", "ExternalLabels", "ExternalURL")
_RULE_TEMPLATES = TemplateLibrary(root="rule", known_fields={"rule": _RULE_FIELDS})


class ShownNumber(float):
    """A rule's ``$value``/``$expected``: a number for functions (``{{ $value | humanizePercentage }}``) that
    prints in the metric's own form (``{{ $value }}`` → ``12.50%``).

    >>> v = ShownNumber(0.125, "12.50%")
    >>> str(v), v * 2
    ('12.50%', 0.25)
    """

    def __new__(cls, value: float, shown: str) -> ShownNumber:
        obj = super().__new__(cls, value)
        obj.shown = shown
        return obj

    shown: str

    def __str__(self) -> str:
        return self.shown


class RuleTemplateData(TemplateData):
    """Dot of a rule annotation template, as in Prometheus: ``.Labels``, ``.Value``.

    >>> dot = RuleTemplateData(KV({"market": "BR"}), ShownNumber(0.125, "12.50%"))
    >>> dot.Labels["market"], str(dot.Value), dot.ExternalURL
    ('BR', '12.50%', '')
    """

    _fields = ("Labels", "Value", "ExternalLabels", "ExternalURL")

    def __init__(self, labels: KV, value: Any) -> None:
        self.Labels, self.Value = labels, value
        self.ExternalLabels, self.ExternalURL = KV(), ""


@functools.lru_cache(maxsize=1024)
def compile_annotation(template: str) -> Template:
    """Compile a rule annotation (Go template syntax); raise :class:`TemplateError` on bad syntax, an unknown
    function or an undefined variable such as ``{{ $valeu }}``."""
    return _RULE_TEMPLATES.compile(template, "annotation", variables=TEMPLATE_VARIABLES)


def render(template: str, labels: Mapping[str, str], values: Mapping[str, str],
           raw: Mapping[str, float | None] | None = None) -> str:  # fmt: skip
    """Render a rule annotation: ``{{ $labels.x }}``, ``{{ $value }}`` (``raw["value"]`` for functions such as
    ``humanizePercentage``, shown as ``values["value"]``), ``{{ $expected }}``, ``{{ $dims }}``, ``{{ $metric }}``.

    Templates run in a sandbox (see :mod:`tunewatch.gotemplate`); nothing in a rule file is evaluated as
    Python. A template that fails on this alert's data (e.g. ``humanize`` of ``n/a``) is sent as written.
    """
    if "{{" not in template:
        return template
    raw = raw or {}

    def number(name: str) -> Any:
        x = raw.get(name)
        shown = values.get(name, "")
        return ShownNumber(x, shown) if isinstance(x, int | float) and not isinstance(x, bool) else shown

    kv = KV(labels)
    variables = {"$labels": kv, "$value": number("value"), "$expected": number("expected"),
                 "$dims": values.get("dims", ""), "$metric": values.get("metric", ""), "$externalLabels": KV(),
                 "$externalURL": ""}  # fmt: skip
    try:
        return compile_annotation(template).render(RuleTemplateData(kv, variables["$value"]), variables)
    except (TemplateError, TemplateRenderError) as exc:
        log.warning("annotation template failed, sent as written: %s", exc)
        return template


def top_contributors(
    detections: pl.DataFrame, metric: str, dimset: str, dims: Mapping[str, str], window: int, direction: str, k: int = 3
) -> list[dict[str, Any]]:
    """The finer series that explain an anomaly most (drill-down), largest excess first.

    Children are series of the same metric and window in dimension sets that refine ``dimset`` and agree on
    its dimension values. Their contribution is the excess over expected, in events for ratios (weighted by
    the denominator) and in the metric's unit otherwise; ``share`` is that excess over the parent's. When a
    coarse child and a finer one explain about as much (``market=BR`` and ``market=BR, cdn=edge-2`` for an
    outage of edge-2 in Brazil), the finer one comes first: it names the cause.
    """
    parent = dimension_set(dimset)
    child_sets = [d for d in detections.get_column("dimset").unique().to_list() if dimension_set(d).refines(parent)]
    if not child_sets:
        return []
    cond = (pl.col("window_start") == window) & (pl.col("metric") == metric) & pl.col("dimset").is_in(child_sets)
    for f, v in dims.items():
        cond &= pl.col(f) == v
    spec = METRICS[metric]
    excess = pl.col("value") - pl.col("expected")
    if spec.kind == "ratio":
        excess = excess * pl.col("weight")
    sign = -1.0 if direction == "down" else 1.0
    rows = (
        detections.filter(cond & pl.col("expected").is_not_null())
        .with_columns((excess * sign).alias("contribution"))
        .filter(pl.col("contribution") > 0)
    )
    if rows.is_empty():
        return []
    parent_row = detections.filter(
        (pl.col("window_start") == window)
        & (pl.col("metric") == metric)
        & (pl.col("dimset") == parent.name)
        & pl.all_horizontal([pl.col(f) == v for f, v in dims.items()] or [pl.lit(True)])
    ).select((excess * sign).alias("total"))
    total = float(parent_row.item(0, 0) or 0.0) if parent_row.height else 0.0
    top = float(rows.get_column("contribution").max())  # type: ignore[arg-type]
    depth = {d: len(dimension_set(d).fields) for d in child_sets}
    # drill down: children explaining about as much (within 10 %) rank by specificity, finest first
    ranked = rows.with_columns(
        (pl.col("contribution") / top * 10).round(0).alias("__bucket"),
        pl.col("dimset").replace_strict(depth, return_dtype=pl.Int64).alias("__depth"),
    ).sort(["__bucket", "__depth", "contribution"], descending=True)
    out = []
    for row in ranked.head(k).iter_rows(named=True):
        child = dimension_set(row["dimset"])
        out.append(
            {
                "dims": {f: row[f] for f in child.fields},
                "value": row["value"],
                "expected": row["expected"],
                "contribution": row["contribution"] * sign,
                "share": min(1.0, row["contribution"] / total) if total > 0 else None,
            }
        )
    return out
