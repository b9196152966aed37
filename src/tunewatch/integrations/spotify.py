"""Track and artist metadata from the Spotify Web API (spotipy, client-credentials flow).

Credentials come from ``SPOTIFY_CLIENT_ID`` / ``SPOTIFY_CLIENT_SECRET`` (the secret is a ``SecretStr``: never
printed, never logged); ``SPOTIFY_API_BASE`` and ``SPOTIFY_TOKEN_URL`` point the client elsewhere (tests use a local
server). Lookups are batched (``Get Several Tracks`` / ``Get Several Artists``: at most 50 ids a call), ids that
are not Spotify ids are answered "unknown" without a request, and every call runs under :class:`RetryPolicy`
(429 honouring ``Retry-After``, 5xx, network errors). spotipy's own urllib3 retries are switched off so that
there is exactly one retry layer.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Final, Literal
from urllib.parse import urlsplit

import requests
import spotipy
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from spotipy.cache_handler import MemoryCacheHandler

from tunewatch.integrations import redact
from tunewatch.integrations.errors import IntegrationError, parse_retry_after
from tunewatch.integrations.retry import RetryPolicy

Kind = Literal["track", "artist"]

BATCH_MAX: Final = 50  # Spotify's limit for Get Several Tracks / Artists
_SPOTIFY_ID: Final = re.compile(r"^[0-9A-Za-z]{22}$")
_URI: Final = re.compile(r"^spotify:(track|artist):([0-9A-Za-z]{22})$")


class SpotifySettings(BaseSettings):
    """Spotify client settings, from ``SPOTIFY_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="SPOTIFY_", extra="ignore", frozen=True)

    client_id: str = Field(default="", description="client id of a Spotify app (SPOTIFY_CLIENT_ID)")
    client_secret: SecretStr = Field(default=SecretStr(""), description="its secret (SPOTIFY_CLIENT_SECRET)")
    api_base: str = Field(default="https://api.spotify.com/v1/", description="Web API prefix (SPOTIFY_API_BASE)")
    token_url: str = Field(default="https://accounts.spotify.com/api/token", description="token endpoint")
    timeout_s: float = Field(default=5.0, gt=0, description="per-request timeout")
    attempts: int = Field(default=4, ge=1, description="tries per call, the first included")
    max_retry_after_s: float = Field(default=60.0, ge=0, description="longest Retry-After waited for")


def spotify_id(value: str) -> str | None:
    """The bare Spotify id of an id or ``spotify:track:…`` / ``spotify:artist:…`` URI; ``None`` if neither.

    >>> spotify_id("spotify:track:4uLU6hMCjMI75M1A2tKUQC"), spotify_id("trk-000001")
    ('4uLU6hMCjMI75M1A2tKUQC', None)
    """
    if _SPOTIFY_ID.match(value):
        return value
    m = _URI.match(value)
    return m.group(2) if m else None


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _track_record(item: dict[str, Any]) -> dict[str, Any]:
    album = item.get("album") or {}
    artists = [a for a in item.get("artists") or [] if a]
    return {
        "id": item.get("id"),
        "name": item.get("name"),
        "artists": [a.get("name") for a in artists],
        "artist_ids": [a.get("id") for a in artists],
        "album": album.get("name"),
        "release_date": album.get("release_date"),
        "popularity": item.get("popularity"),
        "duration_ms": item.get("duration_ms"),
        "explicit": item.get("explicit"),
        "isrc": (item.get("external_ids") or {}).get("isrc"),
        "provider": "spotify",
    }


def _artist_record(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": item.get("id"),
        "name": item.get("name"),
        "genres": list(item.get("genres") or []),
        "popularity": item.get("popularity"),
        "followers": (item.get("followers") or {}).get("total"),
        "provider": "spotify",
    }


class SpotifyMetadataClient:
    """Batched, retried metadata lookups against the Spotify Web API.

    ``SpotifyMetadataClient(settings, retry=RetryPolicy(...))``; ``settings`` default to the environment.
    Raises :class:`IntegrationError` (endpoint and status named) when Spotify keeps failing or refuses.
    """

    name = "spotify"

    def __init__(
        self,
        settings: SpotifySettings | None = None,
        *,
        retry: RetryPolicy | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.settings = settings or SpotifySettings()
        s = self.settings
        if not s.client_id or not s.client_secret.get_secret_value():
            raise IntegrationError(
                "spotify auth", None, "SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET must be set (client credentials)"
            )
        redact.install()
        self.retry = retry or RetryPolicy(attempts=s.attempts, max_retry_after_s=s.max_retry_after_s)
        self._session = session or requests.Session()  # a plain session: no urllib3 retries
        self._token_status: int | None = None  # spotipy's token error does not carry the HTTP status
        self._session.hooks["response"].append(self._remember_token_status)
        auth = spotipy.SpotifyClientCredentials(
            client_id=s.client_id,
            client_secret=s.client_secret.get_secret_value(),
            requests_session=self._session,
            requests_timeout=s.timeout_s,
            cache_handler=MemoryCacheHandler(),  # never a .cache file with the token
        )
        auth.OAUTH_TOKEN_URL = s.token_url
        self._client = spotipy.Spotify(
            auth_manager=auth,
            requests_session=self._session,
            requests_timeout=s.timeout_s,
            retries=0,
            status_retries=0,
        )
        self._client.prefix = s.api_base if s.api_base.endswith("/") else s.api_base + "/"
        self._api_path = urlsplit(self._client.prefix).path.rstrip("/")
        self.requests = 0  # HTTP calls made to the Web API (tries included)

    def _remember_token_status(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if response.url.split("?", 1)[0] == self.settings.token_url:
            self._token_status = response.status_code

    def accepts(self, kind: Kind, item_id: str) -> bool:
        """True when ``item_id`` is a Spotify id or URI (other ids are unknown to Spotify by construction)."""
        return spotify_id(item_id) is not None

    def _call(self, endpoint: str, fn: Callable[[], Any]) -> Any:
        def attempt() -> Any:
            self.requests += 1
            try:
                return fn()
            except spotipy.SpotifyException as exc:
                headers = exc.headers or {}
                retry_after = parse_retry_after(headers.get("Retry-After"))
                raise IntegrationError(endpoint, exc.http_status, _reason(exc.msg), retry_after=retry_after) from None
            except spotipy.SpotifyOauthError as exc:
                raise IntegrationError(
                    "spotify POST token",
                    self._token_status,
                    f"client-credentials token refused ({exc.error or 'no reason'})",
                ) from None
            except requests.RequestException as exc:
                raise IntegrationError(endpoint, None, type(exc).__name__) from None

        return self.retry.call(attempt)

    def fetch(self, kind: Kind, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """``{id: record}`` for the ids Spotify knows; unknown and non-Spotify ids are left out.

        Ids may be bare ids or ``spotify:<kind>:<id>`` URIs; keys of the result are the ids as given.
        """
        wanted: dict[str, list[str]] = {}
        for item_id in ids:
            sid = spotify_id(item_id)
            if sid is not None:
                wanted.setdefault(sid, []).append(item_id)
        found: dict[str, dict[str, Any]] = {}
        plural = "tracks" if kind == "track" else "artists"
        endpoint = f"spotify GET {self._api_path}/{plural}"
        for chunk in _chunks(list(wanted), BATCH_MAX):
            method = self._client.tracks if kind == "track" else self._client.artists
            body = self._call(endpoint, functools.partial(method, list(chunk)))
            items = (body or {}).get(plural)
            if not isinstance(items, list):
                raise IntegrationError(endpoint, 200, f"response has no '{plural}' list")
            if len(items) != len(chunk):
                raise IntegrationError(endpoint, 200, f"asked for {len(chunk)} {plural}, got {len(items)}")
            for sid, item in zip(chunk, items, strict=True):  # in request order; null for an unknown id
                if not isinstance(item, dict):
                    continue
                record = _track_record(item) if kind == "track" else _artist_record(item)
                record["id"] = sid  # a relinked track answers with another id
                for given in wanted[sid]:
                    found[given] = record
        return found

    def close(self) -> None:
        """Close the HTTP session."""
        self._session.close()


def _reason(msg: str | None) -> str:
    """spotipy puts the URL before the message; keep the message only."""
    if not msg:
        return "no message"
    return msg.rsplit(":\n", 1)[-1].strip() or "no message"
