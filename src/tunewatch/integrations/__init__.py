"""Integrations: track/artist metadata from the Spotify Web API and Last.fm, and import/export of common formats.

Owns the HTTP clients of external metadata services (``spotify``, ``lastfm``), their shared error type and retry
policy (``errors``, ``retry``), secret scrubbing of third-party log records (``redact``), the cached metadata
facade used by the alert path (``metadata``) and the file formats (``formats``: Spotify streaming history and
Last.fm scrobble importers into the §2 event schema, alert/metric exporters). Imports ``schema``, ``errors``,
``cache`` and ``alert.model``; nothing in the pipeline imports it except through :class:`MetadataService`.

The Spotify client (spotipy, requests) and the importers' hashing (polars-hash) come with
``pip install 'tunewatch[integrations]'``; the names below are imported on first use, so that the service runs
without them when no Spotify credentials are configured.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "IntegrationError",
    "LastfmClient",
    "LastfmSettings",
    "MetadataProvider",
    "MetadataService",
    "SpotifyMetadataClient",
    "SpotifySettings",
]

_LAZY = {
    "IntegrationError": "tunewatch.integrations.errors",
    "LastfmClient": "tunewatch.integrations.lastfm",
    "LastfmSettings": "tunewatch.integrations.lastfm",
    "MetadataProvider": "tunewatch.integrations.metadata",
    "MetadataService": "tunewatch.integrations.metadata",
    "SpotifyMetadataClient": "tunewatch.integrations.spotify",
    "SpotifySettings": "tunewatch.integrations.spotify",
}

if TYPE_CHECKING:
    from tunewatch.integrations.errors import IntegrationError
    from tunewatch.integrations.lastfm import LastfmClient, LastfmSettings
    from tunewatch.integrations.metadata import MetadataProvider, MetadataService
    from tunewatch.integrations.spotify import SpotifyMetadataClient, SpotifySettings


def __getattr__(name: str) -> Any:
    """Import the public names on first use (the Spotify client needs the ``integrations`` extra)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tunewatch.integrations' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
