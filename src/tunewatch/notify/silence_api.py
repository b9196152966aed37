"""Silences of a running tunewatch service, through its HTTP API (``/api/v1/silences``), as amtool does it.

The service owns its silence store; a client that changes silences through the API can never write to a
database the service does not read. Times are the service's: a silence given a duration starts at the
service's "now" (which, in ``tunewatch run``, is the simulated clock).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from tunewatch.notify.matchers import parse_matchers
from tunewatch.notify.silence import Silence, SilenceError, SilenceState


@dataclass(frozen=True, slots=True)
class RemoteSilence:
    """A silence and its state as the service sees it now."""

    silence: Silence
    state: SilenceState


class SilenceApiClient:
    """Create, list and expire silences of the service at ``url`` (``api_key``: a key with admin scope)."""

    def __init__(self, url: str, *, api_key: str | None = None, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(base_url=self.url, headers=headers, timeout=timeout_s)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def __enter__(self) -> SilenceApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(
        self,
        matchers: list[str],
        *,
        comment: str,
        created_by: str,
        duration: str | None = None,
        starts_at: datetime | None = None,
        ends_at: datetime | None = None,
    ) -> RemoteSilence:
        """Create a silence; ``duration`` (e.g. ``2h``) counts from ``starts_at``, default the service's now."""
        body: dict[str, Any] = {"matchers": matchers, "comment": comment, "created_by": created_by}
        if duration is not None:
            body["duration"] = duration
        if starts_at is not None:
            body["starts_at"] = starts_at.isoformat()
        if ends_at is not None:
            body["ends_at"] = ends_at.isoformat()
        return _silence(self._request("POST", "/api/v1/silences", json=body))

    def find(self) -> list[RemoteSilence]:
        """Every silence of the service (pending, active, expired), newest first."""
        return [_silence(item) for item in self._request("GET", "/api/v1/silences")]

    def expire(self, silence_id: str) -> RemoteSilence:
        """Expire a silence now (id or unique id prefix)."""
        return _silence(self._request("DELETE", f"/api/v1/silences/{silence_id}"))

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise SilenceError(f"{self.url}: cannot reach the tunewatch service ({type(exc).__name__})") from None
        if response.status_code in (401, 403):
            raise SilenceError(
                f"{self.url}: the service refused the request (HTTP {response.status_code}); "
                "give an API key with admin scope (--api-key or TUNEWATCH_API_KEY)"
            )
        if response.status_code >= 400:
            raise SilenceError(f"{self.url}: {_detail(response)}")
        try:
            return response.json()
        except ValueError:
            raise SilenceError(f"{self.url}: not a tunewatch service (the answer is not JSON)") from None


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, list):  # request validation errors: [{"loc": [...], "msg": ...}]
        detail = "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail)
    return f"HTTP {response.status_code}: {detail or response.reason_phrase}"


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def _silence(item: Any) -> RemoteSilence:
    try:
        silence = Silence(
            id=item["id"],
            matchers=parse_matchers(item["matchers"]),
            starts_at=_ms(item["startsAt"]),
            ends_at=_ms(item["endsAt"]),
            created_by=item["createdBy"],
            comment=item["comment"],
            updated_at=0,
        )
        return RemoteSilence(silence, item["state"])
    except (KeyError, TypeError, ValueError) as exc:
        raise SilenceError(f"unexpected answer from the service: {type(exc).__name__} {exc}") from None
