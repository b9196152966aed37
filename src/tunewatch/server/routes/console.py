"""The web console: its page (``/``), its queries and the offline API docs.

* ``GET /api/v1/console/alerts``: the alert log searched (state, severity, alert name, metric, slice, time range,
  free text), newest first, with the values present in the log for the filter menus;
* ``GET /api/v1/console/series``: the series with detection results searched by metric, slice and text, each
  metric with the unit its chart's y-axis is labelled in;
* ``GET /api/v1/console/silence-preview``: the active alerts that matchers would mute, before the silence is
  created (``POST /api/v1/silences``; the same matcher syntax and matching as a silence);
* ``GET /docs`` and ``GET /redoc``: Swagger UI and ReDoc from the assets packaged in ``fastapi-offline``, so the
  pages work with no network, under a content security policy that allows no other origin.

Read-only: every answer comes from the service's stores (alert log, silences, series) through their public
methods. Searches need the ``read`` scope; the silence preview, like creating a silence, ``admin`` (its regex
matchers run on the service's CPU); the docs pages are open, like ``/openapi.json``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import FileResponse, HTMLResponse

from tunewatch.alert.model import Alert
from tunewatch.errors import ConfigError
from tunewatch.notify.matchers import matches_all, parse_matchers
from tunewatch.process.catalogue import METRICS
from tunewatch.process.revenue import configured_currency
from tunewatch.schema import DIMENSION_FIELDS
from tunewatch.server.auth import AccessControl
from tunewatch.server.routes.context import RouteContext
from tunewatch.server.service import LiveService

STATIC: Final = Path(__file__).parent.parent / "static"
_CONSOLE_HEADERS: Final = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
#: state changes searched: the newest 10,000 of the alert log (parsing them takes about half a second)
HISTORY_SCAN: Final = 10_000
#: series searched: every series of the newest window, up to this many
SERIES_SCAN: Final = 5_000
#: values listed per filter menu (a track_id menu could otherwise hold thousands)
FACET_VALUES: Final = 200
#: the latest time a query parameter may name: 9999-12-31T23:59:59.999Z
MAX_EPOCH_MS: Final = 253_402_300_799_999

_DOCS_ASSETS: Final = Path(str(files("fastapi_offline"))) / "static"
_DOCS_FILES: Final = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}
#: Swagger UI and ReDoc set inline styles and ReDoc runs its search in a blob: worker; scripts only from here
_DOCS_HEADERS: Final = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_DOCS_PAGE: Final = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>tunewatch API: {title}</title>
  <link rel="icon" href="/docs/assets/favicon.png">{css}
</head>
<body>
  <div id="{root}"></div>
  <script src="/docs/assets/{bundle}"></script>
  <script src="/static/docs/{init}"></script>
</body>
</html>
"""

Status = Literal["firing", "resolved"]


@dataclass(frozen=True, slots=True)
class AxisUnit:
    """How a metric's values are shown on a chart's y-axis: ``value * scale``, then ``suffix``."""

    label: str
    suffix: str
    scale: float = 1.0


def axis_unit(metric: str, currency: str | None = None) -> AxisUnit:
    """The y-axis unit of ``metric`` (windows are one minute: counts and sums are per minute); money in
    ``currency``, else the configured one (``TUNEWATCH_CURRENCY``)."""
    spec = METRICS.get(metric)
    if spec is None:
        return AxisUnit("value", "")
    if spec.kind == "ratio":
        if metric == "streams_per_listener":
            return AxisUnit("streams per listener", "")
        return AxisUnit(f"{spec.description} (%)", "%", 100.0)
    if spec.unit == "micros":
        code = currency or configured_currency()
        return AxisUnit(f"revenue per minute ({code})", f" {code}", 1e-6)
    if spec.unit in ("ms", "s"):
        return AxisUnit(f"{spec.description} ({spec.unit})", f" {spec.unit}")
    return AxisUnit(f"{spec.description} per minute", "/min")


def router(ctx: RouteContext) -> APIRouter:
    """The console page at ``/`` (``/static`` is mounted by the app: a mount is not a route), its queries and
    the offline docs pages."""
    api = console_router(ctx.service, ctx.access)

    @api.get("/", include_in_schema=False)
    def console() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html", headers=_CONSOLE_HEADERS)

    return api


def console_router(service: LiveService, access: AccessControl) -> APIRouter:
    """The console's query endpoints and the offline docs pages, over ``service``'s stores."""
    router = APIRouter()
    read = [Depends(access.dependency("read"))]
    log = _ParsedLog(service)

    @router.get("/api/v1/console/alerts", tags=["console"], dependencies=read)
    def search_alerts(
        state: Annotated[list[Status], Query(description="firing and/or resolved state changes")] = [],  # noqa: B006
        severity: Annotated[list[str], Query(max_length=64)] = [],  # noqa: B006
        alertname: Annotated[list[str], Query(max_length=200)] = [],  # noqa: B006
        metric: Annotated[list[str], Query(max_length=64)] = [],  # noqa: B006
        slice: Annotated[
            list[str],
            Query(
                max_length=200,
                description="field=value (a schema dimension); matches the alert's slice or a slice its incident "
                "also affected. Several: all must match.",
            ),
        ] = [],  # noqa: B006
        since: Annotated[int | None, Query(ge=0, le=MAX_EPOCH_MS, description="epoch ms, change time")] = None,
        until: Annotated[int | None, Query(ge=0, le=MAX_EPOCH_MS, description="epoch ms, change time")] = None,
        q: Annotated[str, Query(max_length=200, description="words, all found in names, labels or texts")] = "",
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> dict[str, Any]:
        """Alert state changes from the alert log matching every filter, newest change time first.

        Each entry is the alert as in ``/api/v1/alerts`` plus ``at`` (epoch ms of the change) and, for an
        incident, ``explanation.also_affected`` (the other slices folded into it). ``facets`` lists the values
        found in the log for each filter; ``now`` is the service clock (simulated in ``tunewatch run``).
        """
        dims = _slice_filters(slice, "slice")
        changes, facets = log.read()
        wanted = _AlertFilter(
            states=frozenset(state), severities=frozenset(severity), names=frozenset(alertname),
            metrics=frozenset(metric), dims=dims, since=since, until=until, words=_words(q),
        )  # fmt: skip
        found = sorted((a for a in reversed(changes) if wanted.matches(a)), key=_change_ms, reverse=True)
        return {
            "now": service.now_ms(),
            "total": len(found),
            "scanned": len(changes),
            "alerts": [{**a.to_dict(), "at": _change_ms(a)} for a in found[:limit]],
            "facets": facets,
        }

    @router.get("/api/v1/console/series", tags=["console"], dependencies=read)
    def search_series(
        metric: Annotated[str, Query(max_length=64, description="exact metric name")] = "",
        slice: Annotated[
            list[str], Query(max_length=200, description="field=value; `global` for the aggregate only")
        ] = [],  # noqa: B006
        q: Annotated[str, Query(max_length=200, description="words, all found in the metric or slice")] = "",
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        """Series of the newest window matching the filters, sorted by metric then slice (the aggregate first),
        with each metric's description and y-axis unit."""
        only_global = any(s.strip() == "global" for s in slice)
        dims = _slice_filters([s for s in slice if s.strip() != "global"], "slice")
        words = _words(q)
        found = []
        for s in service.series.catalog(SERIES_SCAN):
            sdims: dict[str, str] = s["dims"]
            if metric and s["metric"] != metric:
                continue
            if (only_global and sdims) or any(sdims.get(k) != v for k, v in dims.items()):
                continue
            name = _series_name(s["metric"], sdims)
            if all(w in name.lower() for w in words):
                found.append({"metric": s["metric"], "dims": sdims, "name": name})
        found.sort(key=lambda s: (s["metric"], len(s["dims"]), [s["dims"].get(f, "") for f in DIMENSION_FIELDS]))
        return {
            "total": len(found),
            "series": found[:limit],
            "metrics": {m: _metric_info(m) for m in sorted({s["metric"] for s in found})},
        }

    @router.get(
        "/api/v1/console/silence-preview",
        tags=["console"],
        dependencies=[Depends(access.dependency("admin"))],  # as creating silences: regex matchers cost CPU
        responses={400: {"description": "bad matchers"}},
    )
    def silence_preview(
        matcher: Annotated[list[str], Query(min_length=1, max_length=20, description="as for POST /api/v1/silences")],
    ) -> dict[str, Any]:
        """The active alerts that a silence with these matchers would mute now (nothing is created)."""
        if any(len(m) > 1000 for m in matcher):
            raise HTTPException(400, "matcher: longer than 1000 characters")
        try:
            matchers = parse_matchers(matcher)
        except ConfigError as exc:
            raise HTTPException(400, str(exc)) from None
        now = service.now_ms()
        active = service.active_alerts()
        muted = [a for a in active if matches_all(matchers, a.labels)]
        return {
            "now": now,
            "matchers": [str(m) for m in matchers],
            "active": len(active),
            "alerts": [{**a.to_dict(), "silencedBy": service.silenced_by(a, now)} for a in muted],
        }

    @router.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        css = '\n  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">'
        page = _DOCS_PAGE.format(
            title="Swagger UI", css=css, root="swagger-ui", bundle="swagger-ui-bundle.js", init="swagger-init.js"
        )
        return HTMLResponse(page, headers=_DOCS_HEADERS)

    @router.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        page = _DOCS_PAGE.format(
            title="ReDoc", css="", root="redoc", bundle="redoc.standalone.js", init="redoc-init.js"
        )
        return HTMLResponse(page, headers=_DOCS_HEADERS)

    @router.get("/docs/assets/{name}", include_in_schema=False)
    def docs_asset(name: str) -> FileResponse:
        media = _DOCS_FILES.get(name)
        if media is None:
            raise HTTPException(404, f"no docs asset {name!r}")
        return FileResponse(_DOCS_ASSETS / name, media_type=media, headers={"Cache-Control": "max-age=86400"})

    return router


class _ParsedLog:
    """The alert log's newest :data:`HISTORY_SCAN` changes and their facets, parsed again only when the log's
    newest change differs from the one seen last (parsing 10,000 changes takes about half a second, and every
    open console asks every 5 seconds)."""

    def __init__(self, service: LiveService) -> None:
        self._service = service
        self._lock = threading.Lock()
        self._newest: list[Alert] | None = None
        self._snapshot: tuple[list[Alert], dict[str, Any]] = ([], _facets([]))

    def read(self) -> tuple[list[Alert], dict[str, Any]]:
        """The changes (oldest first) and the filter menus' values."""
        newest = self._service.alert_log.history(1)
        with self._lock:
            if newest != self._newest:
                changes = self._service.alert_log.history(HISTORY_SCAN)
                self._snapshot = (changes, _facets(changes))
                self._newest = newest
            return self._snapshot


@dataclass(frozen=True, slots=True)
class _AlertFilter:
    """Every filter of the alert search; an empty set or None does not filter."""

    states: frozenset[str]
    severities: frozenset[str]
    names: frozenset[str]
    metrics: frozenset[str]
    dims: Mapping[str, str]
    since: int | None
    until: int | None
    words: Sequence[str]

    def matches(self, a: Alert) -> bool:
        labels = a.labels
        if self.states and a.status not in self.states:
            return False
        if self.severities and labels.get("severity", "") not in self.severities:
            return False
        if self.names and a.name not in self.names:
            return False
        if self.metrics and labels.get("metric", "") not in self.metrics:
            return False
        at = _change_ms(a)
        if (self.since is not None and at < self.since) or (self.until is not None and at > self.until):
            return False
        if self.dims and not any(_within(self.dims, s) for s in _slices(a)):
            return False
        if self.words:
            text = _search_text(a)
            return all(w in text for w in self.words)
        return True


def _change_ms(a: Alert) -> int:
    """When the state change happened: the start of a firing alert, the end of a resolved one."""
    return a.ends_at if a.status == "resolved" and a.ends_at is not None else a.starts_at


def _slices(a: Alert) -> Iterable[Mapping[str, str]]:
    """The alert's own slice, then those its incident also affected."""
    yield {f: a.labels[f] for f in DIMENSION_FIELDS if f in a.labels}
    for entry in a.extra.get("also_affected", ()):
        dims = entry.get("dims") if isinstance(entry, Mapping) else None
        if isinstance(dims, Mapping):
            yield {str(k): str(v) for k, v in dims.items()}


def _within(wanted: Mapping[str, str], dims: Mapping[str, str]) -> bool:
    return all(dims.get(k) == v for k, v in wanted.items())


def _search_text(a: Alert) -> str:
    parts = [f"{k}={v}" for k, v in a.labels.items()]
    parts += a.annotations.values()
    return "\n".join(parts).lower()


def _words(q: str) -> list[str]:
    return q.lower().split()


def _slice_filters(items: Sequence[str], param: str) -> dict[str, str]:
    """``field=value`` items as a dict; a 400 naming the parameter for anything else."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in DIMENSION_FIELDS:
            raise HTTPException(
                400, f"{param}: expected field=value with a field among {', '.join(DIMENSION_FIELDS)}, got {item!r}"
            )
        if key in out and out[key] != value.strip():
            raise HTTPException(400, f"{param}: {key} given twice with different values")
        out[key] = value.strip()
    return out


def _facets(changes: Sequence[Alert]) -> dict[str, Any]:
    """Values present in the log for each filter menu (sorted; at most :data:`FACET_VALUES` per menu)."""
    severities: set[str] = set()
    names: set[str] = set()
    metrics: set[str] = set()
    dims: dict[str, set[str]] = {}
    for a in changes:
        severities.add(a.labels.get("severity", ""))
        names.add(a.name)
        metrics.add(a.labels.get("metric", ""))
        for s in _slices(a):
            for k, v in s.items():
                dims.setdefault(k, set()).add(v)

    def top(values: set[str]) -> list[str]:
        return sorted(v for v in values if v)[:FACET_VALUES]

    return {
        "severity": top(severities),
        "alertname": top(names),
        "metric": top(metrics),
        "slice": {f: top(dims[f]) for f in DIMENSION_FIELDS if f in dims},
    }


def _series_name(metric: str, dims: Mapping[str, str]) -> str:
    inner = ", ".join(f"{k}={v}" for k, v in dims.items())
    return f"{metric} {{{inner}}}" if inner else f"{metric} (global)"


def _metric_info(metric: str) -> dict[str, Any]:
    unit = axis_unit(metric)
    spec = METRICS.get(metric)
    return {
        "description": spec.description if spec else "",
        "unit": {"label": unit.label, "suffix": unit.suffix, "scale": unit.scale},
    }
