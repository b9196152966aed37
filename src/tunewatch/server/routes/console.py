"""The web console: ``/`` (its page) and ``/static`` (mounted by the app: a mount is not a route)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from tunewatch.server.routes.context import RouteContext

STATIC = Path(__file__).parent.parent / "static"

_CONSOLE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def router(ctx: RouteContext) -> APIRouter:
    """Console routes."""
    api = APIRouter()

    @api.get("/", include_in_schema=False)
    def console() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html", headers=_CONSOLE_HEADERS)

    return api
