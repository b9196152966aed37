"""POST /api/v1/events, shared by the FastAPI route (documented in OpenAPI) and a raw ASGI fast path.

The fast path (:class:`IngestApp`) answers ``POST /api/v1/events`` before Starlette's middleware, FastAPI's routing,
validation and dependency machinery, which cost more than the work itself for single-event requests; both paths
run the same code below. It reads only the headers it needs, takes a body sent in one piece without a copy and
answers the usual outcome (every event accepted) with a pre-encoded body.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Mapping

import msgspec
from fastapi import FastAPI, HTTPException
from starlette.concurrency import run_in_threadpool
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tunewatch.server.auth import AccessControl
from tunewatch.server.batcher import IngestBatcher
from tunewatch.server.budget import RejectionBudget
from tunewatch.server.decode import (
    ACCEPTED_TYPES,
    NDJSON_TYPES,
    SUPPORTED,
    BodyError,
    BoundedDecoder,
    Payload,
    count_byte,
    decode_body,
)
from tunewatch.server.guard import request_headers
from tunewatch.server.report import IngestReport
from tunewatch.server.settings import ServerSettings

INGEST_PATH = "/api/v1/events"
_JSON = (b"content-type", b"application/json")
_NEWLINE = ord("\n")
#: bodies at least this large are decoded in a worker thread
_DECODE_INLINE_BYTES = 1 << 20


class IngestHandler:
    """Admits, reads, bounds, decodes and queues one ingest request.

    Every bound is checked before the request reaches the pipeline lock: the body as sent
    (``max_body_bytes``), decompressed while it streams in (``max_decoded_bytes``, NDJSON lines counted as they
    come out), items per request (``max_events_per_request``, 413) and the address's rejected events this minute
    (``max_rejected_per_minute``, 429).
    """

    def __init__(self, settings: ServerSettings, access: AccessControl, batcher: IngestBatcher) -> None:
        self.settings = settings
        self.access = access
        self.batcher = batcher
        self.rejections = RejectionBudget(settings.max_rejected_per_minute)
        self._small_limit = min(settings.max_body_bytes, settings.max_decoded_bytes)  # see read_small

    async def handle(
        self, headers: Mapping[str, str], chunks: AsyncIterator[bytes], address: str | None
    ) -> IngestReport:
        """Admit, read and decode (bounded), ingest; raise HTTPException."""
        await self.admit(headers, address)
        payload = await self.read(headers, chunks)
        return await self.ingest(payload, address)

    async def admit(self, headers: Mapping[str, str], address: str | None, *, failures_checked: bool = False) -> None:
        """Check the key, scope and rate limits, the address's rejection budget, the media type and the declared
        body size (401, 403, 429, 415, 413); ``failures_checked`` as in :meth:`AccessControl.admit`."""
        await self.access.admit("ingest", headers, address, failures_checked=failures_checked)
        wait = self.rejections.retry_after(address)
        if wait is not None:
            raise HTTPException(
                429,
                f"more than {self.settings.max_rejected_per_minute} rejected events from this address this minute: "
                f"fix the events (see the quarantine) and retry in {wait} s",
                headers={"Retry-After": str(wait)},
            )
        media = (headers.get("content-type") or "").split(";", 1)[0].strip().lower()
        if media not in ACCEPTED_TYPES:
            shown = repr(headers.get("content-type")) if headers.get("content-type") else "none"
            raise HTTPException(415, f"unsupported Content-Type {shown}: use {SUPPORTED}")
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

    async def read(self, headers: Mapping[str, str], chunks: AsyncIterator[bytes]) -> Payload:
        """Read, decompress and decode the body, refused (413) as soon as one of its bounds is passed."""
        content_type = headers.get("content-type")
        ndjson = (content_type or "").split(";", 1)[0].strip().lower() in NDJSON_TYPES
        limit = self.settings.max_events_per_request
        try:
            decoder = BoundedDecoder(headers.get("content-encoding"), self.settings.max_decoded_bytes)
            parts: list[bytes] = []
            size = lines = 0
            async for chunk in chunks:
                size += len(chunk)
                self.bound(size)
                out = decoder.feed(chunk)
                if ndjson:
                    lines += count_byte(out, _NEWLINE)
                    if lines > limit:
                        raise BodyError(413, f"body has more than {limit} lines, the limit per request")
                parts.append(out)
            decoder.finish()
            body = parts[0] if len(parts) == 1 else b"".join(parts)
            if len(body) < _DECODE_INLINE_BYTES:
                return decode_body(body, content_type, limit)
            # a large body takes long to decode: off the event loop, so that other requests are still served
            return await run_in_threadpool(decode_body, body, content_type, limit)
        except BodyError as exc:
            raise HTTPException(exc.status, exc.message) from exc

    def read_small(self, headers: Mapping[str, str], body: bytes) -> Payload | None:
        """:meth:`read` of a body that came in one piece, without ``Content-Encoding`` and within every size
        bound (the usual single-event request): the same checks and answers, without the streaming decoder;
        None for any other body (read by :meth:`read`)."""
        size = len(body)
        if "content-encoding" in headers or size >= _DECODE_INLINE_BYTES or size > self._small_limit:
            return None
        content_type = headers.get("content-type")
        limit = self.settings.max_events_per_request
        try:
            ndjson = (content_type or "").split(";", 1)[0].strip().lower() in NDJSON_TYPES
            if ndjson and count_byte(body, _NEWLINE) > limit:
                raise BodyError(413, f"body has more than {limit} lines, the limit per request")
            return decode_body(body, content_type, limit)
        except BodyError as exc:
            raise HTTPException(exc.status, exc.message) from exc

    async def ingest(self, payload: Payload, address: str | None) -> IngestReport:
        """Queue a decoded request, wait for its report, and count its rejected events against ``address``."""
        report = await self.batcher.submit(payload)
        self.rejections.spend(address, report.rejected)
        return report


class IngestApp(FastAPI):
    """FastAPI that serves ``POST /api/v1/events`` with :attr:`ingest_handler` before everything else.

    Errors other than :class:`HTTPException` are answered ``500 Internal Server Error`` and re-raised, as
    Starlette's outermost middleware does for every other route.
    """

    ingest_handler: IngestHandler | None = None
    #: the checks every request passes first (see :mod:`tunewatch.server.guard`), wrapping :meth:`dispatch`
    guard: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.guard is not None:
            await self.guard(scope, receive, send)
        else:
            await self.dispatch(scope, receive, send)

    async def dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Ingest on the fast path, everything else through FastAPI; an address over its failed-authentication
        limit is refused (429) before either, at the cost of a dictionary lookup."""
        handler = self.ingest_handler
        if handler is not None and scope["type"] == "http" and scope["path"].startswith("/api/"):
            client = scope.get("client")
            refused = await handler.access.refuse_early(client[0] if client else None)
            if refused is not None:
                extra = [(k.lower().encode(), str(v).encode()) for k, v in (refused.headers or {}).items()]
                await _send(send, refused.status_code, msgspec.json.encode({"detail": refused.detail}), extra)
                return
        if handler is None or scope["type"] != "http" or scope["path"] != INGEST_PATH or scope["method"] != "POST":
            if handler is not None and scope["type"] == "http" and not handler.batcher.service.settled:
                # a query after an ingest answer reads the state that answer reported: wait (off the event
                # loop) until the stream has advanced with the steps counted so far
                await run_in_threadpool(handler.batcher.service.settle)
            await super().__call__(scope, receive, send)
            return
        try:
            status, content, extra = await _serve(handler, scope, receive)
        except Exception:
            await PlainTextResponse("Internal Server Error", status_code=500)(scope, receive, send)
            raise
        await _send(send, status, content, extra)


async def _send(send: Send, status: int, content: bytes, extra: list[tuple[bytes, bytes]]) -> None:
    """A JSON answer with ``extra`` headers."""
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
    headers = request_headers(scope)  # parsed once per request, by the guard already
    client = scope.get("client")
    address = client[0] if client else None
    try:
        await handler.admit(headers, address, failures_checked=True)  # dispatch asked refuse_early just before
        first = await receive()
        payload = None
        if first["type"] == "http.request" and not first.get("more_body", False):
            payload = handler.read_small(headers, first.get("body", b""))
        if payload is None:
            payload = await handler.read(headers, _chunks(first, receive))
        report = await handler.ingest(payload, address)
    except HTTPException as exc:
        extra = [(k.lower().encode(), str(v).encode()) for k, v in (exc.headers or {}).items()]
        return exc.status_code, msgspec.json.encode({"detail": exc.detail}), extra
    if report.accepted == report.received and not report.rejected and not report.duplicates:
        return 200, _all_accepted(report.received), []
    return 200, msgspec.json.encode(report.to_dict()), []


async def _chunks(first: Message, receive: Receive) -> AsyncIterator[bytes]:
    """Body chunks, from ``first`` on, until the last one; a disconnect before it is a truncated body (400)."""
    message = first
    while message["type"] != "http.disconnect":
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return
        message = await receive()
    raise HTTPException(400, "the client disconnected before the end of the body")


@functools.lru_cache(maxsize=1024)
def _all_accepted(count: int) -> bytes:
    """The answer to a request whose ``count`` events were all accepted (encoded once per count)."""
    return msgspec.json.encode(IngestReport(count, count, 0, 0, [], []).to_dict())
