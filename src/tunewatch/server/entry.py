"""Process entry point for uvicorn: ``uvicorn tunewatch.server.entry:app_from_env --factory``.

Settings come from ``TUNEWATCH_*`` environment variables (see
:class:`~tunewatch.server.settings.ServerSettings`; without ``TUNEWATCH_DB`` the state lives in memory), e.g.
``TUNEWATCH_DB=/var/lib/tunewatch/tunewatch.db TUNEWATCH_AUTH=1 TUNEWATCH_NOTIFY_CONFIG=/etc/tunewatch/notify.yml``;
the process is built by the same composition root as ``tunewatch serve`` (notifications included).
"""

from __future__ import annotations

from fastapi import FastAPI

from tunewatch.server.runtime import build_runtime
from tunewatch.server.settings import process_settings


def app_from_env() -> FastAPI:
    """Build the service and its app from the environment (the notifier stops when the app shuts down)."""
    return build_runtime(process_settings("factory")).app()
