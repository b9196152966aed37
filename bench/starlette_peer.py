"""The peer of ``bench/http.py``: a bare Starlette JSON endpoint, served with the same uvicorn settings.

``POST /api/v1/events`` decodes the JSON body and answers a small JSON object (how many items it held): the
least an HTTP JSON ingest endpoint can do, so that the service's figures read as a share of it.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def events(request: Request) -> JSONResponse:
    """Decode the body and count its items."""
    body = await request.json()
    count = len(body) if isinstance(body, list) else 1
    return JSONResponse({"received": count, "accepted": count})


app = Starlette(routes=[Route("/api/v1/events", events, methods=["POST"])])
