"""The FastAPI application: middleware and lifespan; the routes are in :mod:`tunewatch.server.routes` (one
router per resource) and the work is done by :class:`LiveService`.

Everything is under ``/api/v1``; ``/healthz`` and ``/readyz`` are open, ``/metrics`` needs the ``metrics`` scope
when auth is on (unless ``TUNEWATCH_METRICS_AUTH=0``: it carries per-market revenue), the
web console is served at ``/``. See :mod:`tunewatch.server.settings` for authentication and limits.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from tunewatch.errors import ConfigError
from tunewatch.notify.dispatcher import NotificationPipeline
from tunewatch.security.ratelimit import RateLimiter
from tunewatch.server.auth import AccessControl
from tunewatch.server.batcher import IngestBatcher
from tunewatch.server.errors import install_error_handlers
from tunewatch.server.guard import RequestGuard
from tunewatch.server.ingest_http import INGEST_PATH, IngestApp, IngestHandler
from tunewatch.server.routes import ROUTERS, RouteContext
from tunewatch.server.routes.console import STATIC
from tunewatch.server.service import LiveService
from tunewatch.server.settings import ServerSettings
from tunewatch.version import __version__


def create_app(
    service: LiveService,
    settings: ServerSettings | None = None,
    *,
    notifier: NotificationPipeline | None = None,
    on_shutdown: Sequence[Callable[[], None]] = (),
) -> IngestApp:
    """Build the app around a live service (settings default to the service's, i.e. ``TUNEWATCH_*``).

    ``notifier`` (the service's notification pipeline) gives Alertmanager's API its receivers, groups and
    inhibitions; ``on_shutdown`` runs after the last checkpoint when the app stops (e.g. stopping the notifier).
    """
    cfg = settings or service.settings
    if cfg.auth and service.db_path == ":memory:":
        raise ConfigError(
            "TUNEWATCH_AUTH=1 needs a database with API keys: set TUNEWATCH_DB to the file used by `tunewatch keys`"
        )
    limiter = RateLimiter(
        per_key=cfg.rate_limit_per_key,
        per_address=cfg.rate_limit_per_address,
        auth_failures=cfg.auth_failures_per_address,
        storage_url=cfg.rate_limit_storage,
        timeout_s=cfg.rate_limit_timeout_s,
    )
    limiter.on_fallback = service.metrics_extra.rate_limit_fallback
    batcher = IngestBatcher(service, max_events=cfg.batch_max_events)
    access = AccessControl(auth=cfg.auth, keys=service.keys, limiter=limiter)
    handler = IngestHandler(cfg, access, batcher)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if cfg.gc_freeze:
            gc.collect()
            gc.freeze()  # start-up objects (modules, functions) leave the collector's scans: shorter GC pauses
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(cfg.gil_switch_interval_s)  # see ServerSettings.gil_switch_interval_s
        yield
        await batcher.close()  # graceful shutdown: queued batches are run before the process ends
        # ... and a restart resumes exactly here (ids, windows). Called directly: no request is served any more,
        # and handing it to the thread pool during shutdown let a SIGINT tear the lifespan down half-way.
        service.checkpoint()
        for close in on_shutdown:
            close()
        sys.setswitchinterval(switch_interval)

    app = IngestApp(
        title="tunewatch",
        version=__version__,
        description="Anomaly detection and alerting for music-streaming events.",
        lifespan=lifespan,
        docs_url=None,  # /docs and /redoc: served offline by routes.console
        redoc_url=None,
    )
    app.state.service = service
    app.ingest_handler = handler
    app.guard = RequestGuard(app.dispatch, cfg, bound_bodies_except={INGEST_PATH})
    app.state.limiter = limiter
    install_error_handlers(app)

    ctx = RouteContext(service, cfg, access, handler, limiter, notifier)
    for build in ROUTERS:
        app.include_router(build(ctx))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app

