"""``POST /api/v1/events`` (documented here; served by :class:`~tunewatch.server.ingest_http.IngestApp`'s fast path)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from tunewatch.server.models import IngestResponse
from tunewatch.server.routes.context import RouteContext

_INGEST_BODY = {
    "requestBody": {
        "required": True,
        "description": "Events: a JSON array (or one object), NDJSON, or msgpack; optionally gzip or zstd encoded.",
        "content": {
            "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
            "application/x-ndjson": {"schema": {"type": "string"}},
            "application/msgpack": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


def router(ctx: RouteContext) -> APIRouter:
    """The ingest route."""
    handler = ctx.handler
    api = APIRouter(tags=["ingest"])

    @api.post(
        "/api/v1/events",
        response_model=IngestResponse,
        openapi_extra=_INGEST_BODY,
        responses={
            400: {"description": "unusable body"},
            413: {"description": "body too large"},
            415: {"description": "unsupported content type or encoding"},
        },
    )
    async def ingest(request: Request) -> JSONResponse:
        """Ingest a batch of events; the answer counts accepted, rejected (with reasons) and duplicate events.

        (Served by :class:`IngestApp` before routing; this route documents it and serves mounted uses.)
        """
        report = await handler.handle(
            request.headers, request.stream(), request.client.host if request.client else None
        )
        return JSONResponse(report.to_dict())

    return api
