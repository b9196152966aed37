"""The one error type of external integrations: names the endpoint, the HTTP status and the reason."""

from __future__ import annotations

from tunewatch.errors import TunewatchError

#: HTTP statuses worth another try: rate limited, or a server-side failure.
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


class IntegrationError(TunewatchError):
    """A call to an external service failed.

    ``endpoint`` is e.g. ``"spotify GET /v1/tracks"`` (never with credentials), ``status`` the HTTP status
    (``None`` for a network failure), ``retry_after`` the server's ``Retry-After`` in seconds when it sent one.

    >>> str(IntegrationError("spotify GET /v1/tracks", 503, "service unavailable"))
    'spotify GET /v1/tracks: HTTP 503: service unavailable'
    """

    def __init__(self, endpoint: str, status: int | None, reason: str, *, retry_after: float | None = None) -> None:
        self.endpoint = endpoint
        self.status = status
        self.reason = reason
        self.retry_after = retry_after
        where = f"HTTP {status}" if status is not None else "network error"
        super().__init__(f"{endpoint}: {where}: {reason}")

    @property
    def retryable(self) -> bool:
        """True for 429, 5xx and network failures: a later try may succeed."""
        return self.status is None or self.status in RETRYABLE_STATUSES


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header given in seconds; ``None`` when absent or not a number.

    >>> parse_retry_after("3"), parse_retry_after(None), parse_retry_after("soon")
    (3.0, None, None)
    """
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
