"""POST /api/v1/events, shared by the FastAPI route (documented in OpenAPI) and a raw ASGI fast path.

The fast path (:class:`IngestApp`) answers ``POST /api/v1/events`` before Starlette's middleware, FastAPI's routing,
validation and dependency machinery, which cost more than the work itself for single-event requests; both paths
run the same code below. It reads only the headers it needs, takes a body sent in one piece without a copy and
answers the usual outcome (every event accepted) with a pre-encoded body.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Iterable, Mapping

import msgspec
from fastapi import FastAPI, HTTPException
from starlette.responses import PlainTextResponse
from starlette.types import Message, Receive, Scope, Send

from tunewatch.server.auth import AccessControl
from tunewatch.server.batcher import IngestBatcher
from tunewatch.server.decode import BodyError, decode_body, decompress
from tunewatch.server.report import IngestReport
from tunewatch.server.settings import ServerSettings

INGEST_PATH = "/api/v1/events"
#: the request headers the ingest path reads (ASGI servers give header names in lower case)
_WANTED = frozenset({b"authorization", b"x-api-key", b"content-length", b"content-type", b"content-encoding"})
_JSON = (b"content-type", b"application/json")


class IngestHandler:
    """Reads, bounds, decodes and queues one ingest request."""

    def __init__(self, settings: ServerSettings, access: AccessControl, batcher: IngestBatcher) -> None:
        self.settings = settings
        self.access = access
        self.batcher = batcher

    async def handle(
        self, headers: Mapping[str, str], chunks: AsyncIterator[bytes], address: str | None
    ) -> IngestReport:
        """Admit, read (at most ``max_body_bytes``), decompress, decode and ingest; raise HTTPException."""
        await self.admit(headers, address)
        return await self.ingest(headers, await self.read(chunks))

    async def admit(self, headers: Mapping[str, str], address: str | None) -> None:
        """Check the key, scope and rate limits, then the declared body size (401, 403, 429, 413)."""
        await self.access.admit("ingest", headers, address)
        limit = self.settings.max_body_bytes
        try:
            declared = int(headers.get("content-length") or 0)
        except ValueError:
            declared = 0
        if declared > limit:
            raise HTTPException(413, f"body of {declared} bytes is larger than the limit of {limit} bytes")

    def bound(self, size: int) -> None:
        """Refuse a body that has grown past ``max_body_bytes`` (413)."""
        if size > self.settings.max_body_bytes:
            raise HTTPException(413, f"body is larger than the limit of {self.settings.max_body_bytes} bytes")

    async def read(self, chunks: AsyncIterator[bytes]) -> bytes:
        """The whole body, refused (413) as soon as it grows past ``max_body_bytes``."""
        parts: list[bytes] = []
        size = 0
        async for chunk in chunks:
            size += len(chunk)
            self.bound(size)
            parts.append(chunk)
        return b"".join(parts)

    async def ingest(self, headers: Mapping[str, str], body: bytes) -> IngestReport:
        """Decompress and decode ``body`` (400, 413, 415), then queue it and wait for its report."""
        try:
            raw = decompress(body, headers.get("content-encoding"), self.settings.max_decoded_bytes)
            payload = decode_body(raw, headers.get("content-type"))
        except BodyError as exc:
            raise HTTPException(exc.status, exc.message) from exc
        return await self.batcher.submit(payload)


class IngestApp(FastAPI):
    """FastAPI that serves ``POST /api/v1/events`` with :attr:`ingest_handler` before everything else.

    Errors other than :class:`HTTPException` are answered ``500 Internal Server Error`` and re-raised, as
    Starlette's outermost middleware does for every other route.
    """

    ingest_handler: IngestHandler | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self.ingest_handler
        if handler is None or scope["type"] != "http" or scope["path"] != INGEST_PATH or scope["method"] != "POST":
            await super().__call__(scope, receive, send)
            return
        try:
            status, content, extra = await _serve(handler, scope, receive)
        except Exception:
            await PlainTextResponse("Internal Server Error", status_code=500)(scope, receive, send)
            raise
        if extra:
            headers = [_JSON, (b"content-length", str(len(content)).encode()), *extra]
        else:
            headers = [_JSON, (b"content-length", str(len(content)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})


async def _serve(
    handler: IngestHandler, scope: Scope, receive: Receive
) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """Status, body and extra headers of the answer to one ingest request."""
    headers = _headers(scope["headers"])
    client = scope.get("client")
    try:
        await handler.admit(headers, client[0] if client else None)
        message = await receive()
        if message["type"] == "http.request" and not message.get("more_body", False):
            body: bytes = message.get("body", b"")
            handler.bound(len(body))
        else:
            body = await handler.read(_chunks(message, receive))
        report = await handler.ingest(headers, body)
    except HTTPException as exc:
        extra = [(k.lower().encode(), str(v).encode()) for k, v in (exc.headers or {}).items()]
        return exc.status_code, msgspec.json.encode({"detail": exc.detail}), extra
    if report.accepted == report.received and not report.rejected and not report.duplicates:
        return 200, _all_accepted(report.received), []
    return 200, msgspec.json.encode(report.to_dict()), []


def _headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """The request headers the ingest path reads, first occurrence of each (as Starlette's ``Headers.get``)."""
    out: dict[str, str] = {}
    for name, value in raw:
        if name in _WANTED:
            key = name.decode("latin-1")
            if key not in out:
                out[key] = value.decode("latin-1")
    return out


async def _chunks(first: Message, receive: Receive) -> AsyncIterator[bytes]:
    """Body chunks, from ``first`` on, until the last one or a disconnect."""
    message = first
    while message["type"] != "http.disconnect":
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return
        message = await receive()


@functools.lru_cache(maxsize=1024)
def _all_accepted(count: int) -> bytes:
    """The answer to a request whose ``count`` events were all accepted (encoded once per count)."""
    return msgspec.json.encode(IngestReport(count, count, 0, 0, [], []).to_dict())
