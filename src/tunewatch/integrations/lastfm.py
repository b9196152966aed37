"""Track and artist metadata from Last.fm (``track.getInfo``, ``artist.getInfo``) over httpx.

The API key comes from ``LASTFM_API_KEY`` (a ``SecretStr``; the key is a query parameter, so URLs are never put in
errors and httpx's request log is scrubbed by :mod:`~tunewatch.integrations.redact`); ``LASTFM_API_BASE`` points the
client elsewhere (tests use a local server). Last.fm has no batch call: one request per item.

Last.fm answers errors as ``{"error": N, "message": …}``: 6 means "not found" (the item is unknown), 29 "rate limit
exceeded" and 8/11/16 transient back-end trouble (all retried like HTTP 429/5xx); anything else is an
:class:`IntegrationError`.

As a :class:`~tunewatch.integrations.metadata.MetadataProvider`, it resolves MusicBrainz ids (the ``mbid`` Last.fm
keys tracks and artists by); as an enricher it adds ``listeners``, ``playcount`` and ``tags`` to a record that a
provider found, looked up by name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Final, Literal

import httpx
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from tunewatch.integrations import redact
from tunewatch.integrations.errors import IntegrationError, parse_retry_after
from tunewatch.integrations.retry import RetryPolicy

Kind = Literal["track", "artist"]

_MBID: Final = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_NOT_FOUND: Final = 6
_RETRYABLE_CODES: Final = {8: 503, 11: 503, 16: 503, 29: 429}  # Last.fm error code -> HTTP status it stands for


class LastfmSettings(BaseSettings):
    """Last.fm client settings, from ``LASTFM_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="LASTFM_", extra="ignore", frozen=True)

    api_key: SecretStr = Field(default=SecretStr(""), description="Last.fm API key (LASTFM_API_KEY)")
    api_base: str = Field(default="https://ws.audioscrobbler.com/2.0/", description="endpoint (LASTFM_API_BASE)")
    timeout_s: float = Field(default=5.0, gt=0, description="per-request timeout")
    attempts: int = Field(default=4, ge=1, description="tries per call, the first included")
    max_retry_after_s: float = Field(default=60.0, ge=0, description="longest Retry-After waited for")
    max_tags: int = Field(default=5, ge=0, description="tags kept per item")


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _tags(block: Any, limit: int) -> list[str]:
    tags = (block or {}).get("tag") if isinstance(block, dict) else None
    if isinstance(tags, dict):  # a single tag comes as an object
        tags = [tags]
    return [t["name"] for t in tags or [] if isinstance(t, dict) and t.get("name")][:limit]


class LastfmClient:
    """Last.fm metadata client: ``track_info``, ``artist_info``; a provider for mbids and an enricher by name.

    Raises :class:`IntegrationError` (method and status named) when Last.fm keeps failing or refuses.
    """

    name = "lastfm"

    def __init__(
        self,
        settings: LastfmSettings | None = None,
        *,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.settings = settings or LastfmSettings()
        s = self.settings
        if not s.api_key.get_secret_value():
            raise IntegrationError("lastfm auth", None, "LASTFM_API_KEY must be set")
        redact.install()
        self.retry = retry or RetryPolicy(attempts=s.attempts, max_retry_after_s=s.max_retry_after_s)
        self._http = httpx.Client(
            base_url=s.api_base, timeout=s.timeout_s, transport=transport, headers={"User-Agent": "tunewatch"}
        )
        self.requests = 0

    # ------------------------------------------------------------ transport
    def _get(self, method: str, params: dict[str, str]) -> dict[str, Any] | None:
        """The JSON body of ``method``; ``None`` when Last.fm says the item does not exist."""
        endpoint = f"lastfm GET {method}"
        query = {**params, "method": method, "format": "json", "api_key": self.settings.api_key.get_secret_value()}

        def attempt() -> dict[str, Any] | None:
            self.requests += 1
            try:
                response = self._http.get("", params=query)
            except httpx.HTTPError as exc:
                raise IntegrationError(endpoint, None, type(exc).__name__) from None
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            try:
                body = response.json()
            except ValueError:
                body = None
            if isinstance(body, dict) and "error" in body:
                code = _int(body.get("error"))
                message = str(body.get("message") or "no message")[:200]
                if code == _NOT_FOUND:
                    return None
                status = _RETRYABLE_CODES.get(code or 0, response.status_code if response.is_error else 400)
                raise IntegrationError(endpoint, status, f"error {code}: {message}", retry_after=retry_after)
            if response.is_error:
                raise IntegrationError(endpoint, response.status_code, response.reason_phrase, retry_after=retry_after)
            if not isinstance(body, dict):
                raise IntegrationError(endpoint, response.status_code, "response is not a JSON object")
            return body

        result: dict[str, Any] | None = self.retry.call(attempt)
        return result

    # ------------------------------------------------------------- methods
    def track_info(
        self, *, artist: str | None = None, track: str | None = None, mbid: str | None = None
    ) -> dict[str, Any] | None:
        """``track.getInfo`` by ``mbid`` or by ``artist`` and ``track`` name; ``None`` if Last.fm does not know it."""
        if mbid:
            params = {"mbid": mbid}
        elif artist and track:
            params = {"artist": artist, "track": track, "autocorrect": "1"}
        else:
            raise ValueError("track_info: needs mbid, or artist and track")
        body = self._get("track.getInfo", params)
        item = body.get("track") if body else None
        if not isinstance(item, dict):
            return None
        artist_block = item.get("artist")
        artist_name = artist_block.get("name") if isinstance(artist_block, dict) else artist_block
        album: dict[str, Any] = item["album"] if isinstance(item.get("album"), dict) else {}
        duration = _int(item.get("duration"))
        return {
            "id": mbid or item.get("mbid") or None,
            "name": item.get("name"),
            "artists": [artist_name] if artist_name else [],
            "album": album.get("title"),
            "duration_ms": duration or None,
            "listeners": _int(item.get("listeners")),
            "playcount": _int(item.get("playcount")),
            "tags": _tags(item.get("toptags"), self.settings.max_tags),
            "url": item.get("url"),
            "provider": "lastfm",
        }

    def artist_info(self, *, artist: str | None = None, mbid: str | None = None) -> dict[str, Any] | None:
        """``artist.getInfo`` by ``mbid`` or ``artist`` name; ``None`` if Last.fm does not know it."""
        if mbid:
            params = {"mbid": mbid}
        elif artist:
            params = {"artist": artist, "autocorrect": "1"}
        else:
            raise ValueError("artist_info: needs mbid or artist")
        body = self._get("artist.getInfo", params)
        item = body.get("artist") if body else None
        if not isinstance(item, dict):
            return None
        stats: dict[str, Any] = item["stats"] if isinstance(item.get("stats"), dict) else {}
        return {
            "id": mbid or item.get("mbid") or None,
            "name": item.get("name"),
            "listeners": _int(stats.get("listeners")),
            "playcount": _int(stats.get("playcount")),
            "tags": _tags(item.get("tags"), self.settings.max_tags),
            "url": item.get("url"),
            "provider": "lastfm",
        }

    # ---------------------------------------------------- provider/enricher
    def accepts(self, kind: Kind, item_id: str) -> bool:
        """True for MusicBrainz ids, the ids Last.fm can look up."""
        return bool(_MBID.match(item_id.lower()))

    def fetch(self, kind: Kind, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """``{mbid: record}`` for the MusicBrainz ids Last.fm knows (one request each)."""
        found: dict[str, dict[str, Any]] = {}
        for item_id in ids:
            if not self.accepts(kind, item_id):
                continue
            record = self.track_info(mbid=item_id) if kind == "track" else self.artist_info(mbid=item_id)
            if record is not None:
                found[item_id] = record
        return found

    def enrich(self, kind: Kind, record: dict[str, Any]) -> dict[str, Any]:
        """Fields to add to ``record`` (a provider's answer): listeners, playcount, tags; ``{}`` if unknown."""
        name = record.get("name")
        if not name:
            return {}
        if kind == "track":
            artists = record.get("artists") or []
            if not artists:
                return {}
            info = self.track_info(artist=str(artists[0]), track=str(name))
        else:
            info = self.artist_info(artist=str(name))
        if info is None:
            return {}
        return {f"lastfm_{k}": info[k] for k in ("listeners", "playcount", "tags", "url") if info.get(k) is not None}

    def close(self) -> None:
        """Close the HTTP client."""
        self._http.close()
