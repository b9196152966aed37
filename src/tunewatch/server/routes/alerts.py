"""``/api/v1/alerts``: active alerts (with the silences muting them) and recent state changes."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from tunewatch.server.routes.context import RouteContext


def router(ctx: RouteContext) -> APIRouter:
    """Alert routes."""
    service = ctx.service
    api = APIRouter(tags=["alerts"])

    @api.get("/api/v1/alerts", dependencies=[ctx.scope("read")])
    def alerts(
        state: Literal["active", "history"] = "active",
        history: Annotated[bool, Query(description="Same as state=history (kept for older clients).")] = False,
    ) -> list[dict[str, Any]]:
        """Active alerts (with the silences that mute them), or recent state changes, newest last."""
        if history or state == "history":
            return [a.to_dict() for a in service.alert_history()]
        now = service.now_ms()
        return [{**a.to_dict(), "silencedBy": service.silenced_by(a, now)} for a in service.active_alerts()]

    return api
