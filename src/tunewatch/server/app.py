"""The FastAPI application: routes only; the work is done by :class:`LiveService`."""

from __future__ import annotations

from typing import Any

import msgspec
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from tunewatch import __version__
from tunewatch.ingest.batch import RawBatch
from tunewatch.ingest.readers import parse_ndjson_bytes
from tunewatch.server.service import LiveService

MAX_BODY_BYTES = 16 * 1024 * 1024


def create_app(service: LiveService) -> FastAPI:
    """Build the app around a live service."""
    app = FastAPI(title="tunewatch", version=__version__, description="Anomaly detection for music streaming.")

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, Any]:
        """Liveness: the process answers and the pipeline counters."""
        return {"status": "ok", **service.status()}

    @app.get("/metrics", tags=["health"])
    def metrics() -> Response:
        """Prometheus exposition of tunewatch's own metrics."""
        return Response(service.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.post("/api/v1/events", tags=["ingest"])
    async def ingest(request: Request) -> JSONResponse:
        """Ingest a batch of events: a JSON array of objects, or NDJSON (one object a line)."""
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            raise HTTPException(413, f"body larger than {MAX_BODY_BYTES} bytes")
        if not body.strip():
            raise HTTPException(400, "empty body: send a JSON array of events or NDJSON")
        batch = _decode(body)
        report = service.ingest(batch)
        return JSONResponse(report.to_dict())

    @app.get("/api/v1/alerts", tags=["alerts"])
    def alerts(history: bool = False) -> list[dict[str, Any]]:
        """Active alerts (or, with ``history=true``, recent state changes)."""
        items = service.alert_history() if history else service.active_alerts()
        return [a.to_dict() for a in items]

    return app


def _decode(body: bytes) -> RawBatch:
    stripped = body.lstrip()
    if stripped.startswith(b"["):
        try:
            records = msgspec.json.decode(stripped)
        except msgspec.DecodeError as exc:
            raise HTTPException(400, f"body is not valid JSON: {str(exc)[:120]}") from exc
        if not isinstance(records, list):
            raise HTTPException(400, "expected a JSON array of event objects")
        batch = RawBatch.from_records(records, source="http")
        batch.raw_lines = [msgspec.json.encode(r) for r in records]
        return batch
    return parse_ndjson_bytes(body, source="http")
