"""``/api/v1/quarantine``: rejected events with their reasons."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from tunewatch.server.routes.context import RouteContext


def router(ctx: RouteContext) -> APIRouter:
    """Quarantine routes."""
    service = ctx.service
    api = APIRouter(tags=["quarantine"])

    @api.get("/api/v1/quarantine", dependencies=[ctx.scope("read")])
    def quarantine(limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
        """Recent rejected events (newest first) with their reasons and raw bytes (truncated)."""
        return {"total": service.quarantine.total, "events": service.quarantine.recent(limit)}

    return api
