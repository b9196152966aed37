"""What every router of the HTTP API is built from: the live service, its settings and access control."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Request

from tunewatch.notify.dispatcher import NotificationPipeline
from tunewatch.security.keys import ApiKey, Scope
from tunewatch.security.ratelimit import RateLimiter
from tunewatch.server.auth import AccessControl
from tunewatch.server.ingest_http import IngestHandler
from tunewatch.server.service import LiveService
from tunewatch.server.settings import ServerSettings


@dataclass(frozen=True, slots=True)
class RouteContext:
    """The components one app serves; each router module's ``router(ctx)`` builds its routes over them."""

    service: LiveService
    settings: ServerSettings
    access: AccessControl
    handler: IngestHandler
    limiter: RateLimiter
    notifier: NotificationPipeline | None = None  #: the service's notification pipeline, when configured

    def scope(self, name: Scope) -> Any:
        """A FastAPI dependency requiring an API key with scope ``name`` (a no-op when auth is off)."""
        return Depends(self.access.dependency(name))


def actor(key: ApiKey | None, request: Request) -> str:
    """Who did an administrative action: the API key, else (auth off) the client address."""
    if key is not None:
        return f"api-key:{key.id}:{key.name}"
    return f"anonymous@{request.client.host if request.client else 'unknown'}"
