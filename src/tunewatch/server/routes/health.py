"""``/healthz`` and ``/readyz`` (open) and ``/metrics`` (the ``metrics`` scope when auth is on, unless
``metrics_auth`` is off: it carries per-market revenue)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from tunewatch.server.routes.context import RouteContext


def router(ctx: RouteContext) -> APIRouter:
    """Health and metrics routes."""
    service, limiter = ctx.service, ctx.limiter
    api = APIRouter(tags=["health"])

    @api.get("/healthz")
    def healthz() -> dict[str, Any]:
        """Liveness: the process answers, with the pipeline counters."""
        return {"status": "ok", **service.status()}

    @api.get("/readyz", responses={503: {"description": "a dependency is not ready"}})
    def readyz() -> JSONResponse:
        """Readiness: the databases answer. Shared rate-limit storage being down degrades (limits are kept in
        memory meanwhile) but does not make the service unready."""
        checks = service.ready()
        ok = all(checks.values())
        storage = "memory" if limiter.storage is None else ("ok" if limiter.ready() else "fallback to memory")
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "checks": {**checks, "rate_limit_storage": storage}},
            status_code=200 if ok else 503,
        )

    metrics_guard = [ctx.scope("metrics")] if ctx.settings.metrics_auth else []

    @api.get("/metrics", response_class=Response, dependencies=metrics_guard)
    def metrics() -> Response:
        """Prometheus exposition of tunewatch's own metrics."""
        return Response(service.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return api
