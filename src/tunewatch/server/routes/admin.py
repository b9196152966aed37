"""``/api/v1/admin``: profiling the pipeline (admin scope)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Response
from starlette.concurrency import run_in_threadpool

from tunewatch.monitor.profiling import ProfilingUnavailable
from tunewatch.server.routes.context import RouteContext


def router(ctx: RouteContext) -> APIRouter:
    """Admin routes."""
    service = ctx.service
    api = APIRouter(tags=["admin"])

    @api.get(
        "/api/v1/admin/profile",
        dependencies=[ctx.scope("admin")],
        response_class=Response,
        responses={503: {"description": "pyinstrument is not installed"}},
    )
    async def profile(
        seconds: Annotated[float, Query(gt=0, le=60, description="How long to profile pipeline steps.")] = 5.0,
        format: Annotated[Literal["html", "text", "speedscope"], Query()] = "html",
    ) -> Response:
        """Profile the pipeline steps run in the next ``seconds`` (pyinstrument) and return the report."""
        try:
            report = await run_in_threadpool(service.profiler.capture, seconds, format)
        except ProfilingUnavailable as exc:
            raise HTTPException(503, str(exc)) from exc
        media = {"html": "text/html", "text": "text/plain", "speedscope": "application/json"}[format]
        return Response(report, media_type=media)

    return api
