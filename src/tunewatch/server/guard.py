"""Checks every HTTP request passes before any route: proxy trust, ``Host`` allow-list, ``Origin``, body size.

- **Proxy headers** (``X-Forwarded-For``, ``X-Forwarded-Proto``) are applied only when the connection comes from
  an address in ``forwarded_allow_ips`` (uvicorn's own middleware; default: no proxy is trusted, so a client
  cannot choose the address its rate limits count against).
- **Host allow-list** (``allowed_hosts``, loopback names by default; port ignored; ``*`` for any): a page on
  another site that rebinds its DNS name to 127.0.0.1 sends its own name as ``Host`` and is refused (400).
- **Origin** of state-changing requests (every method but GET, HEAD, OPTIONS): a browser names the page that
  sends them; only the service's own origin and ``allowed_origins`` pass (403), so a page the operator opens
  cannot post events or create silences cross-site. Requests without ``Origin`` (curl, SDKs) are not browsers'.
- **Body size** of every endpoint but ingest (which bounds its own while decompressing): ``max_api_body_bytes``
  (413), counted as the body arrives, before a route parses it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, cast
from urllib.parse import urlsplit

import msgspec
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from tunewatch.server.settings import ServerSettings

SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
_DEFAULT_PORTS: Final = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_HOSTS_REMEMBERED: Final = 256  #: distinct Host values whose verdict is kept (bounded: a client chooses them)


def _split_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def host_name(value: str) -> str:
    """The host of a ``Host`` header or allow-list entry: lower case, no port, no brackets, no trailing dot.

    >>> host_name("LocalHost:8787"), host_name("[::1]:80"), host_name("::1"), host_name("example.org.")
    ('localhost', '::1', '::1', 'example.org')
    """
    text = value.strip().lower()
    if text.startswith("["):
        return text[1:].split("]", 1)[0]
    if text.count(":") == 1:
        text = text.split(":", 1)[0]
    return text.rstrip(".")


def _origin_key(scheme: str, host: str, port: int | None) -> tuple[str, str, int]:
    return scheme, host_name(host), port if port is not None else _DEFAULT_PORTS.get(scheme, 0)


def _parse_origin(origin: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    return _origin_key(parts.scheme.lower(), parts.hostname, port)


def _host_port(host_header: str, scheme: str) -> tuple[str, str, int]:
    text = host_header.strip()
    port: int | None = None
    tail = text.rsplit("]", 1)[-1] if text.startswith("[") else text
    if tail.count(":") == 1:
        digits = tail.split(":", 1)[1]
        port = int(digits) if digits.isdigit() else None
    return _origin_key(scheme, text, port)


@dataclass(frozen=True, slots=True)
class _Refusal:
    status: int
    reason: str


class RequestGuard:
    """Wraps an ASGI app with the checks above (HTTP requests only; lifespan and other scopes pass through)."""

    def __init__(self, app: ASGIApp, settings: ServerSettings, *, bound_bodies_except: Iterable[str] = ()) -> None:
        self.app = app
        hosts = _split_list(settings.allowed_hosts)
        self.any_host = "*" in hosts
        self.hosts = frozenset(host_name(h) for h in hosts if h != "*")
        self._hosts_seen: dict[str, bool] = {}  # Host header value -> allowed (see _host_allowed)
        self.origins = frozenset(o for o in (_parse_origin(x) for x in _split_list(settings.allowed_origins)) if o)
        self.max_body = settings.max_api_body_bytes
        self.unbounded_paths = frozenset(bound_bodies_except)
        trusted = _split_list(settings.forwarded_allow_ips)
        self._entry: ASGIApp = self._checked
        if trusted:
            self._entry = cast(ASGIApp, ProxyHeadersMiddleware(cast(Any, self._checked), trusted_hosts=trusted))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self._entry(scope, receive, send)

    def _host_allowed(self, host: str) -> bool:
        """Whether ``Host: host`` is served here; the verdicts of the last few hundred distinct values are kept."""
        allowed = self._hosts_seen.get(host)
        if allowed is None:
            if len(self._hosts_seen) >= _HOSTS_REMEMBERED:
                self._hosts_seen.clear()
            allowed = self._hosts_seen[host] = host_name(host) in self.hosts
        return allowed

    def refusal(self, scope: Scope) -> tuple[int, str] | None:
        """Why the request is refused before any work (status, reason), or None."""
        headers = request_headers(scope)
        host = headers.get("host")
        if host is not None and not self.any_host and not self._host_allowed(host):
            return 400, (
                f"Host {host[:100]!r} is not served here: add it to TUNEWATCH_ALLOWED_HOSTS (or --allowed-hosts) "
                "if the service is meant to be reached by that name"
            )
        if scope["method"] not in SAFE_METHODS:
            origin = headers.get("origin")
            if origin is not None:
                parsed = _parse_origin(origin)
                own = _host_port(host, scope.get("scheme", "http")) if host is not None else None
                if parsed is None or (parsed != own and parsed not in self.origins):
                    return 403, (
                        f"cross-origin request from {origin[:100]!r} refused: only the service's own pages "
                        "(and TUNEWATCH_ALLOWED_ORIGINS) may change state"
                    )
            elif headers.get("sec-fetch-site") == "cross-site":
                return 403, "cross-site request refused: only the service's own pages may change state"
        return None

    async def _checked(self, scope: Scope, receive: Receive, send: Send) -> None:
        refused = self.refusal(scope)
        if refused is None and scope["path"] not in self.unbounded_paths:
            bounded = await self._buffer(scope, receive)
            if isinstance(bounded, _Refusal):
                refused = bounded.status, bounded.reason
            else:
                receive, body = bounded
                if body.strip() and scope["method"] not in SAFE_METHODS:
                    refused = _json_refusal(scope, body)
        if refused is not None:
            await _answer(send, *refused)
            return
        await self.app(scope, receive, send)

    async def _buffer(self, scope: Scope, receive: Receive) -> tuple[Receive, bytes] | _Refusal:
        """Read the whole body (at most ``max_body``): a receive that replays it to the app, and the body."""
        limit = self.max_body
        declared = request_headers(scope).get("content-length")
        too_large = _Refusal(413, f"body is larger than the limit of {limit} bytes for this endpoint")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return too_large
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > limit:
                return too_large
            if not message.get("more_body", False):
                break

        body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        return replay, body


def _json_refusal(scope: Scope, body: bytes) -> tuple[int, str] | None:
    """422 for a JSON body that is not strict JSON (NaN, Infinity, bad UTF-8), which Python's parser accepts."""
    media = request_headers(scope).get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        return None
    try:
        msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError, ValueError):
        if _NON_FINITE.search(body):
            return 422, "body: NaN and Infinity are not valid JSON numbers; send a number or a string"
        return 422, "body is not valid JSON (UTF-8, RFC 8259)"
    return None


#: the request headers read by the guard and by the ingest path (see :func:`request_headers`)
_WANTED: Final = frozenset(
    {b"host", b"origin", b"sec-fetch-site", b"content-length", b"content-type", b"authorization", b"x-api-key",
     b"content-encoding"}
)  # fmt: skip
_PARSED: Final = "tunewatch.headers"  #: where :func:`request_headers` keeps them in the ASGI scope


def request_headers(scope: Scope) -> dict[str, str]:
    """The headers of the request that the guard and the ingest path read, first occurrence of each (as
    Starlette's ``Headers.get``), names in lower case: read from the scope once per request and kept in it."""
    parsed: dict[str, str] | None = scope.get(_PARSED)
    if parsed is None:
        parsed = scope[_PARSED] = _wanted(scope["headers"])
    return parsed


_NON_FINITE: Final = re.compile(rb"(?<![\w\"])-?(?:NaN|Infinity)(?![\w\"])")


def _wanted(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in raw:
        if name in _WANTED:
            out.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return out


async def _answer(send: Send, status: int, reason: str) -> None:
    body = msgspec.json.encode({"detail": reason})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
