"""POST /api/v1/events, shared by the FastAPI route (documented in OpenAPI) and a raw ASGI fast path.

The fast path answers ``POST /api/v1/events`` before FastAPI's routing, validation and dependency machinery,
which costs more than the work itself for single-event requests; both paths run the same code below.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
from fastapi import HTTPException
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from tunewatch.server.auth import AccessControl
from tunewatch.server.batcher import IngestBatcher
from tunewatch.server.decode import BodyError, decode_body, decompress
from tunewatch.server.report import IngestReport
from tunewatch.server.settings import ServerSettings

INGEST_PATH = "/api/v1/events"


class IngestHandler:
    """Reads, bounds, decodes and queues one ingest request."""

    def __init__(self, settings: ServerSettings, access: AccessControl, batcher: IngestBatcher) -> None:
        self.settings = settings
        self.access = access
        self.batcher = batcher

    async def handle(self, headers: Headers, chunks: AsyncIterator[bytes], address: str | None) -> IngestReport:
        """Admit, read (at most ``max_body_bytes``), decompress, decode and ingest; raise HTTPException."""
        await self.access.admit("ingest", headers, address)
        limit = self.settings.max_body_bytes
        try:
            declared = int(headers.get("content-length") or 0)
        except ValueError:
            declared = 0
        if declared > limit:
            raise HTTPException(413, f"body of {declared} bytes is larger than the limit of {limit} bytes")
        parts: list[bytes] = []
        size = 0
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise HTTPException(413, f"body is larger than the limit of {limit} bytes")
            parts.append(chunk)
        try:
            body = decompress(b"".join(parts), headers.get("content-encoding"), self.settings.max_decoded_bytes)
            payload = decode_body(body, headers.get("content-type"))
        except BodyError as exc:
            raise HTTPException(exc.status, exc.message) from exc
        return await self.batcher.submit(payload)


class IngestFastPath:
    """ASGI middleware: serves ``POST /api/v1/events`` directly, passes everything else to ``app``."""

    def __init__(self, app: ASGIApp, handler: IngestHandler) -> None:
        self.app = app
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != INGEST_PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return

        async def chunks() -> AsyncIterator[bytes]:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                yield message.get("body", b"")
                if not message.get("more_body", False):
                    return

        client = scope.get("client")
        status, extra, content = 200, {}, b""
        try:
            report = await self.handler.handle(Headers(scope=scope), chunks(), client[0] if client else None)
            content = msgspec.json.encode(report.to_dict())
        except HTTPException as exc:
            status, extra = exc.status_code, dict(exc.headers or {})
            content = msgspec.json.encode({"detail": exc.detail})
        await _respond(send, status, content, extra)


async def _respond(send: Send, status: int, content: bytes, extra: dict[str, Any]) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())]
    headers += [(k.lower().encode(), str(v).encode()) for k, v in extra.items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})
