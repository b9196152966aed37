"""Scrub credentials from log records of the HTTP libraries the integrations use.

spotipy logs request headers (``Authorization: Bearer …`` and the client-credentials ``Basic`` header) at DEBUG,
and httpx logs request URLs (with Last.fm's ``api_key`` query parameter) at INFO. :func:`install` adds a filter to
those loggers that rewrites such values to ``<redacted>`` before any handler sees them.
"""

from __future__ import annotations

import logging
import re
from typing import Final

_PATTERNS: Final = (
    (re.compile(r"(Authorization['\"]?\s*[:=]\s*['\"]?)(Bearer|Basic)\s+[^'\",\s}]+", re.I), r"\1\2 <redacted>"),
    (re.compile(r"((?:api_key|client_secret|access_token)=)[^&\s'\"]+", re.I), r"\1<redacted>"),
    (re.compile(r"(['\"]access_token['\"]\s*:\s*['\"])[^'\"]+", re.I), r"\1<redacted>"),
)
LOGGERS: Final = ("spotipy.client", "spotipy.oauth2", "httpx", "httpcore")


def redact(text: str) -> str:
    """``text`` with bearer/basic credentials, api keys and access tokens replaced.

    >>> redact("GET /2.0/?method=track.getInfo&api_key=abc123&format=json")
    'GET /2.0/?method=track.getInfo&api_key=<redacted>&format=json'
    >>> redact("Headers: {'Authorization': 'Bearer tok.en'}")
    "Headers: {'Authorization': 'Bearer <redacted>'}"
    """
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that renders the record and scrubs credentials from the text."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite ``record`` in place; never drops it."""
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to the handler
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_FILTER: Final = RedactingFilter()


def install() -> None:
    """Attach the filter to the third-party loggers that may print credentials (idempotent)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
