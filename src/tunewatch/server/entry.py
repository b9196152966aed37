"""Process entry point for uvicorn: ``uvicorn tunewatch.server.entry:app_from_env --factory``.

Settings come from ``TUNEWATCH_*`` environment variables (see :class:`ServerSettings`), e.g.
``TUNEWATCH_DB=/var/lib/tunewatch/tunewatch.db TUNEWATCH_AUTH=1``. Used by the restart test and the benchmark.
"""

from __future__ import annotations

from fastapi import FastAPI

from tunewatch.server.app import create_app
from tunewatch.server.service import LiveService
from tunewatch.server.settings import ServerSettings


def app_from_env() -> FastAPI:
    """Build the service and its app from the environment."""
    settings = ServerSettings()
    return create_app(LiveService(rules_path=settings.rules, settings=settings))
