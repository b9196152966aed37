"""Routers of the HTTP API, one module per resource; each has ``router(ctx: RouteContext) -> APIRouter``.

:data:`ROUTERS` lists them in the order the app includes them (add a module: add one line there).
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter

from tunewatch.server.routes import (
    admin,
    alertmanager,
    alerts,
    console,
    health,
    ingest,
    keys,
    quarantine,
    rules,
    series,
    silences,
)
from tunewatch.server.routes.context import RouteContext

ROUTERS: list[Callable[[RouteContext], APIRouter]] = [
    health.router,
    ingest.router,
    alerts.router,
    silences.router,
    rules.router,
    keys.router,
    series.router,
    quarantine.router,
    admin.router,
    alertmanager.router,
    console.router,
]

__all__ = ["ROUTERS", "RouteContext"]
