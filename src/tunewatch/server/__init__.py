"""Server: the HTTP service (FastAPI) over one live pipeline — ingest, alerts, silences, series, console.

A thin shell: it decodes requests, calls :class:`~tunewatch.server.service.LiveService` and encodes answers.
Modules: ``runtime`` (the composition root: service, alert log, silence store, notifier from settings), ``app``
(the application), ``routes/`` (one router per resource), ``ingest_http`` (POST /api/v1/events, with an ASGI
fast path), ``batcher`` (concurrent requests coalesced into pipeline steps), ``decode`` (JSON/NDJSON/msgpack,
gzip/zstd, size limits), ``report`` (per-request accounting), ``auth`` (API keys and rate limits),
``quarantine``/``series`` (state kept for the API), ``settings`` (``TUNEWATCH_*``), ``entry`` (uvicorn factory),
``static`` (web console).

Scopes: ``ingest`` for POST /api/v1/events; ``read`` for the GET endpoints under /api/v1; ``admin`` (implies
both) to create or expire silences, reload rules and profile. Authentication is off unless ``TUNEWATCH_AUTH=1``:
the service listens on loopback by default; turn it on before exposing it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tunewatch.server.app import create_app
    from tunewatch.server.service import LiveService

__all__ = ["LiveService", "create_app"]


def __getattr__(name: str) -> Any:
    """``create_app`` and ``LiveService`` are imported on first use, so that ``tunewatch.server.settings`` (read
    by CLI commands of the base install) does not need the ``server`` extra (FastAPI)."""
    if name == "create_app":
        from tunewatch.server.app import create_app

        return create_app
    if name == "LiveService":
        from tunewatch.server.service import LiveService

        return LiveService
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
