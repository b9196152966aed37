"""``/api/v1/quarantine``: rejected events with their reasons — the same durable rows as ``tunewatch quarantine``,
masked the same way (:mod:`tunewatch.quarantine.masking`); ``reveal=true`` (admin scope) shows them as received,
and the store audits it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request

from tunewatch.quarantine.export import format_epoch
from tunewatch.quarantine.masking import display_raw
from tunewatch.quarantine.store import QuarantinedEvent
from tunewatch.security.keys import ApiKey
from tunewatch.server.routes.context import RouteContext, actor

#: characters of a raw line shown (the CLI's `show` and `export` give it whole)
RAW_PREVIEW_CHARS = 2048


def _event(e: QuarantinedEvent, reveal: bool) -> dict[str, Any]:
    return {
        "id": e.id, "received_at": format_epoch(e.received_at), "source": e.source, "line_no": e.line_no,
        "event_id": e.event_id, "reasons": list(e.reasons), "state": e.state,
        "raw": display_raw(e.raw, reveal=reveal)[:RAW_PREVIEW_CHARS], **(e.location or {}),
    }  # fmt: skip


def router(ctx: RouteContext) -> APIRouter:
    """Quarantine routes."""
    service = ctx.service
    api = APIRouter(tags=["quarantine"])

    @api.get("/api/v1/quarantine", responses={403: {"description": "reveal needs the admin scope"}})
    def quarantine(
        request: Request,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        reveal: Annotated[bool, Query(description="Personal fields as received (admin scope; audited).")] = False,
        key: ApiKey | None = ctx.scope("read"),
    ) -> dict[str, Any]:
        """Recent rejected events (newest first) with their reasons, where they came from and their raw line
        (personal fields masked unless ``reveal``); ``total`` counts every stored one."""
        if reveal and ctx.access.auth and (key is None or "admin" not in key.scopes):
            raise HTTPException(403, "reveal=true needs an API key with admin scope")
        entries = service.recent_quarantine(limit)
        if reveal:
            service.quarantine.revealed(entries, actor=actor(key, request), via="http")
        return {"total": service.quarantined_total(), "events": [_event(e, reveal) for e in entries]}

    return api
