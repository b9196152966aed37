"""Backtest plot: one series with its value, the detector's expected band and the alerts, as self-contained HTML.

The page is a single file with inline SVG and CSS (no script, no CDN), so it opens anywhere and can be
attached to a ticket. Choose the series with a selector such as ``failure_rate{market=BR, cdn=edge-2}``
(``failure_rate`` alone is the global series); by default the series of the first alert is drawn.

During a replay, :class:`SeriesRecorder` is the pipeline's ``on_metrics`` callback that keeps the detections
needed for the plot.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import numpy as np
import polars as pl

from tunewatch.alert.explain import dims_text, format_value
from tunewatch.alert.model import Alert
from tunewatch.errors import InputError
from tunewatch.evaluate.backtest import alert_dims, fired_at
from tunewatch.process.catalogue import METRICS
from tunewatch.process.processor import ProcessingResult
from tunewatch.schema import DIMENSION_FIELDS

WINDOW_MS: Final = 60_000
_SELECTOR_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\{(.*)\})?\s*$")
_W, _H, _LEFT, _RIGHT, _TOP, _BOTTOM = 1100, 360, 80, 20, 20, 40
_COLUMNS: Final = ("window_start", "metric", "dimset", *DIMENSION_FIELDS, "value", "expected", "lower", "upper")


def parse_series_selector(text: str) -> tuple[str, dict[str, str]]:
    """``metric{field=value, ...}`` → (metric, dims); values may be quoted.

    >>> parse_series_selector('failure_rate{market=BR, cdn="edge-2"}')
    ('failure_rate', {'market': 'BR', 'cdn': 'edge-2'})
    >>> parse_series_selector("plays")
    ('plays', {})
    """
    m = _SELECTOR_RE.match(text)
    if not m:
        raise InputError(f"--series {text!r}: expected metric{{field=value,...}}, e.g. failure_rate{{market=BR}}")
    metric, body = m.group(1), m.group(2) or ""
    if metric not in METRICS:
        raise InputError(f"--series {text!r}: unknown metric {metric!r}")
    dims: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in body.split(","))):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip().strip("\"'")
        if not sep or not value:
            raise InputError(f"--series {text!r}: {part!r} is not field=value")
        if key not in DIMENSION_FIELDS:
            raise InputError(f"--series {text!r}: {key!r} is not a dimension ({', '.join(DIMENSION_FIELDS)})")
        dims[key] = value
    return metric, dims


def alert_series(alert: Alert) -> str:
    """The selector of the series an alert watches."""
    dims = alert_dims(alert)
    body = ", ".join(f"{k}={v}" for k, v in dims.items())
    return f"{alert.labels.get('metric', '')}{{{body}}}" if body else alert.labels.get("metric", "")


def select_series(detections: pl.DataFrame, metric: str, dims: dict[str, str]) -> pl.DataFrame:
    """Rows of exactly one series (the given dimension values, no other dimension), in time order."""
    if detections.is_empty():
        return detections
    cond = pl.col("metric") == metric
    for f in DIMENSION_FIELDS:
        if f in detections.columns:
            cond &= (pl.col(f) == dims[f]) if f in dims else pl.col(f).is_null()
    return detections.filter(cond).sort("window_start")


class SeriesRecorder:
    """``Pipeline(on_metrics=...)`` callback keeping the detections of one series (or of all, if none given).

    >>> from tunewatch.detect.stage import DETECTION_SCHEMA
    >>> rows = pl.DataFrame([{"window_start": 0, "metric": "failure_rate", "dimset": "market", "market": m,
    ...                       "value": 0.1} for m in ("BR", "SE")], schema=DETECTION_SCHEMA)
    >>> recorder = SeriesRecorder("failure_rate{market=BR}")
    >>> recorder(ProcessingResult(pl.DataFrame(), [0], 2), rows)
    >>> recorder.frame().select("market", "value").rows()
    [('BR', 0.1)]
    """

    def __init__(self, series: str | None = None) -> None:
        self.selector = parse_series_selector(series) if series else None
        self._parts: list[pl.DataFrame] = []

    def __call__(self, processed: ProcessingResult, detections: pl.DataFrame) -> None:
        """Keep this batch's rows of the watched series."""
        if detections.is_empty():
            return
        rows = detections.select([c for c in _COLUMNS if c in detections.columns])
        if self.selector is not None:
            rows = select_series(rows, *self.selector)
        if rows.height:
            self._parts.append(rows)

    def frame(self) -> pl.DataFrame:
        """Everything kept so far."""
        return pl.concat(self._parts, how="diagonal_relaxed") if self._parts else pl.DataFrame()


def write_backtest_plot(
    path: Path | str, detections: pl.DataFrame, alerts: Sequence[Alert], series_selector: str | None = None
) -> str:
    """Write the HTML plot of one series to ``path``; return the selector of the series drawn.

    ``series_selector`` defaults to the series of the first firing alert. Raises :class:`InputError` when
    there is nothing to draw (no alert and no selector, or a series with no data).
    """
    firing = sorted((a for a in alerts if a.status == "firing"), key=fired_at)
    if series_selector is None:
        if not firing:
            raise InputError("no alert fired, so there is no default series to plot: pass --series")
        series_selector = alert_series(firing[0])
    metric, dims = parse_series_selector(series_selector)
    rows = select_series(detections, metric, dims)
    if rows.is_empty():
        raise InputError(f"--series {series_selector!r}: no data for this series in the replay")
    ends = {a.fingerprint + str(a.starts_at): a.ends_at for a in alerts if a.status == "resolved"}
    mine = [a for a in firing if a.labels.get("metric") == metric and alert_dims(a) == dims]
    spans = [(a, a.starts_at, ends.get(a.fingerprint + str(a.starts_at))) for a in mine]
    title = f"{metric} · {dims_text(dims)}"
    svg = _svg(rows, metric, spans)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tunewatch backtest · {html.escape(title)}</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 24px; color: #222; }}
svg text {{ font: 11px system-ui, sans-serif; fill: #555; }}
.legend span {{ margin-right: 18px; }} .sw {{ display: inline-block; width: 14px; height: 10px; margin-right: 4px; }}
table {{ border-collapse: collapse; margin-top: 16px; }} td, th {{ border: 1px solid #ddd; padding: 4px 8px; }}
</style></head><body>
<h2>{html.escape(title)}</h2>
<p class="legend"><span><i class="sw" style="background:#1f77b4"></i>value</span>
<span><i class="sw" style="background:#9ecae1"></i>expected band</span>
<span><i class="sw" style="background:#555"></i>expected</span>
<span><i class="sw" style="background:#d62728;opacity:.35"></i>alert firing</span></p>
{svg}
{_alert_table(spans, metric)}
</body></html>
"""
    Path(path).write_text(page, encoding="utf-8")
    return series_selector


def _svg(rows: pl.DataFrame, metric: str, spans: list[tuple[Alert, int, int | None]]) -> str:
    t = rows.get_column("window_start").to_numpy().astype(np.float64)
    names = ("value", "expected", "lower", "upper")
    cols = {c: rows.get_column(c).cast(pl.Float64).fill_null(np.nan).to_numpy() for c in names}
    # every catalogue metric is >= 0 and shares are <= 1: a band beyond that only squashes the picture
    ceiling = 1.0 if METRICS[metric].kind == "ratio" and metric != "streams_per_listener" else np.inf
    for c in ("lower", "upper"):
        cols[c] = np.clip(cols[c], 0.0, ceiling)
    t0, t1 = float(t.min()), float(t.max()) + WINDOW_MS
    finite = np.concatenate([v[np.isfinite(v)] for v in cols.values()])
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    lo = min(lo, 0.0) if lo >= 0 else lo
    hi = hi if hi > lo else lo + 1.0
    pw, ph = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM

    def x(ms: np.ndarray | float) -> np.ndarray:
        return _LEFT + (np.asarray(ms, dtype=np.float64) - t0) / (t1 - t0) * pw

    def y(v: np.ndarray | float) -> np.ndarray:
        return _TOP + ph - (np.asarray(v, dtype=np.float64) - lo) / (hi - lo) * ph

    xs = x(t)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" viewBox="0 0 {_W} {_H}">']
    parts.append(f'<rect x="{_LEFT}" y="{_TOP}" width="{pw}" height="{ph}" fill="#fff" stroke="#ccc"/>')
    for k in range(6):  # y grid
        v = lo + (hi - lo) * k / 5
        yy = float(y(v))
        parts.append(f'<line x1="{_LEFT}" x2="{_LEFT + pw}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#eee"/>')
        label = html.escape(format_value(metric, v))
        parts.append(f'<text x="{_LEFT - 6}" y="{yy + 4:.1f}" text-anchor="end">{label}</text>')
    step = _tick_step(t1 - t0)
    for tick in np.arange(math.ceil(t0 / step) * step, t1, step):  # x grid
        xx = float(x(tick))
        stamp = datetime.fromtimestamp(tick / 1000, tz=UTC).strftime("%H:%M")
        parts.append(f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{_TOP}" y2="{_TOP + ph}" stroke="#eee"/>')
        parts.append(f'<text x="{xx:.1f}" y="{_TOP + ph + 16}" text-anchor="middle">{stamp}</text>')
    day = datetime.fromtimestamp(t0 / 1000, tz=UTC).strftime("%Y-%m-%d UTC")
    parts.append(f'<text x="{_LEFT}" y="{_H - 4}">{day}</text>')
    band = np.isfinite(cols["lower"]) & np.isfinite(cols["upper"])
    for a, b in _runs(band):
        top = " ".join(f"{px:.1f},{py:.1f}" for px, py in zip(xs[a:b], y(cols["upper"][a:b]), strict=True))
        bottom = " ".join(
            f"{px:.1f},{py:.1f}" for px, py in zip(xs[a:b][::-1], y(cols["lower"][a:b][::-1]), strict=True)
        )
        parts.append(f'<polygon points="{top} {bottom}" fill="#9ecae1" fill-opacity="0.5" stroke="none"/>')
    for alert, start, end in spans:
        x0, x1 = float(x(max(start, t0))), float(x(min(end if end is not None else t1, t1)))
        tip = html.escape(f"{alert.name}: {alert.annotations.get('summary', '')}")
        parts.append(
            f'<rect x="{x0:.1f}" y="{_TOP}" width="{max(1.0, x1 - x0):.1f}" height="{ph}" fill="#d62728" '
            f'fill-opacity="0.18"><title>{tip}</title></rect>'
        )
        xf = float(x(fired_at(alert)))
        parts.append(f'<line x1="{xf:.1f}" x2="{xf:.1f}" y1="{_TOP}" y2="{_TOP + ph}" stroke="#d62728" '
                     f'stroke-width="1.5"><title>{tip}</title></line>')  # fmt: skip
        parts.append(f'<text x="{xf + 3:.1f}" y="{_TOP + 12}" style="fill:#d62728">{html.escape(alert.name)}</text>')
    for name, colour, dash in (("expected", "#555", ' stroke-dasharray="4 3"'), ("value", "#1f77b4", "")):
        ok = np.isfinite(cols[name])
        for a, b in _runs(ok):
            pts = " ".join(f"{px:.1f},{py:.1f}" for px, py in zip(xs[a:b], y(cols[name][a:b]), strict=True))
            parts.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="1.2"{dash}/>')
    parts.append("</svg>")
    return "\n".join(parts)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Half-open index ranges where ``mask`` is true."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def _tick_step(span_ms: float) -> int:
    for hours in (0.25, 0.5, 1, 2, 3, 6, 12, 24):
        step = int(hours * 3_600_000)
        if span_ms / step <= 12:
            return step
    return 48 * 3_600_000


def _alert_table(spans: list[tuple[Alert, int, int | None]], metric: str) -> str:
    if not spans:
        return "<p>No alert fired on this series.</p>"
    rows = []
    for alert, start, end in spans:
        stamp = datetime.fromtimestamp(fired_at(alert) / 1000, tz=UTC).strftime("%H:%M")
        minutes = f"{(end - start) / 60_000:.0f} min" if end is not None else "still firing"
        cells = (alert.name, stamp, minutes, alert.annotations.get("actual", ""), alert.annotations.get("expected", ""),
                 alert.annotations.get("summary", ""))  # fmt: skip
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("alert", "fired", "firing for", "actual", "expected", "summary"))
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"
