"""Server: the HTTP service (FastAPI) over one live pipeline — ingest, alerts, metrics, health.

A thin shell: it decodes requests, calls :class:`~tunewatch.server.service.LiveService` and encodes answers.
"""

from tunewatch.server.app import create_app
from tunewatch.server.service import LiveService

__all__ = ["LiveService", "create_app"]
