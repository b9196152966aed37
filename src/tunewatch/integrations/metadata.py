"""Cached track/artist metadata for the alert path: ``MetadataService(providers, cache)``.

A lookup reads through :class:`~tunewatch.cache.MusicStreamingCacheManager` (keys ``meta:track:<id>`` and
``meta:artist:<id>``, tag ``meta``, one day of TTL): hits are answered from the cache in one round trip, the misses
of one call are fetched from the providers in batches (Spotify takes 50 ids a request), and an id that no provider
knows is cached as a negative entry (for ``negative_ttl_s``) so it is not asked for again on every alert.

Providers are asked in order; each is given the ids it ``accepts`` and that earlier providers did not find.
Enrichers (e.g. Last.fm by name) add fields to a found record before it is cached; an enricher's failure only
loses its fields.

>>> class Catalogue:
...     name = "static"
...     def accepts(self, kind, item_id): return True
...     def fetch(self, kind, ids): return {i: {"name": "Song " + i, "artists": ["Band"]} for i in ids if i == "t1"}
>>> from tunewatch.cache import MusicStreamingCacheManager
>>> service = MetadataService([Catalogue()], MusicStreamingCacheManager())
>>> service.track("t1")["name"], service.track("t404")
('Song t1', None)
>>> service.enrich_alert_labels({"alertname": "SkipRateHigh", "track_id": "t1"})
{'track_name': 'Song t1', 'track_artists': 'Band'}
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, Literal, Protocol

from tunewatch.cache import MusicStreamingCacheManager
from tunewatch.integrations.errors import IntegrationError

log = logging.getLogger(__name__)

Kind = Literal["track", "artist"]

DAY_S: Final = 24 * 3600
CACHE_TAG: Final = "meta"
_MAX_ANNOTATION: Final = 200


class MetadataProvider(Protocol):
    """A source of metadata: ``fetch`` returns ``{id: record}`` for the ids it knows (unknown ids left out)."""

    name: str

    def accepts(self, kind: Kind, item_id: str) -> bool:
        """Whether ``item_id`` can be known to this provider at all (no request is made otherwise)."""
        ...

    def fetch(self, kind: Kind, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Records of the known ids; raises ``IntegrationError`` when the service fails."""
        ...


class MetadataEnricher(Protocol):
    """Adds fields to a record a provider found (e.g. Last.fm listeners and tags)."""

    name: str

    def enrich(self, kind: Kind, record: dict[str, Any]) -> dict[str, Any]:
        """Fields to merge into ``record``; raises ``IntegrationError`` when the service fails."""
        ...


class _NeedsFetch(Exception):
    """Raised inside ``get_or_compute`` to learn that a key is absent (nothing is cached for it)."""


def _needs_fetch() -> dict[str, Any] | None:
    raise _NeedsFetch


class MetadataService:
    """Resolve track and artist ids to metadata records through the cache and a chain of providers."""

    def __init__(
        self,
        providers: Sequence[MetadataProvider],
        cache: MusicStreamingCacheManager,
        *,
        enrichers: Sequence[MetadataEnricher] = (),
        ttl_s: float = DAY_S,
        negative_ttl_s: float = DAY_S,
    ) -> None:
        self.providers = list(providers)
        self.enrichers = list(enrichers)
        self.cache = cache
        self.ttl_s = ttl_s
        self.negative_ttl_s = negative_ttl_s

    @classmethod
    def from_env(cls, cache: MusicStreamingCacheManager) -> MetadataService | None:
        """The service over the providers whose credentials are in the environment (Spotify's client
        credentials; Last.fm's API key as an enricher), or None when neither is configured."""
        import os

        from tunewatch.integrations.lastfm import LastfmClient

        providers: list[MetadataProvider] = []
        enrichers: list[MetadataEnricher] = []
        if os.environ.get("SPOTIFY_CLIENT_ID") and os.environ.get("SPOTIFY_CLIENT_SECRET"):
            providers.append(spotify_client())
        if os.environ.get("LASTFM_API_KEY"):
            enrichers.append(LastfmClient())
        if not providers and not enrichers:
            return None
        return cls(providers, cache, enrichers=enrichers)

    @staticmethod
    def key(kind: Kind, item_id: str) -> str:
        """Cache key of an item: ``meta:<kind>:<id>``."""
        return f"meta:{kind}:{item_id}"

    # ------------------------------------------------------------- lookups
    def lookup(self, kind: Kind, ids: Iterable[str]) -> dict[str, dict[str, Any] | None]:
        """``{id: record or None}`` for every id; ``None`` means no provider knows it.

        Raises :class:`IntegrationError` if a provider fails (nothing is cached for the ids it was asked for).
        """
        wanted = list(dict.fromkeys(i for i in ids if i))
        if not wanted:
            return {}
        hits = self.cache.get_many([self.key(kind, i) for i in wanted])  # one round trip; negatives left out
        out: dict[str, dict[str, Any] | None] = {}
        absent: list[str] = []
        for item_id in wanted:
            key = self.key(kind, item_id)
            if key in hits:
                out[item_id] = hits[key]
                continue
            try:  # a negative entry answers None here; an absent key raises _NeedsFetch
                out[item_id] = self.cache.get_or_compute(key, _needs_fetch, ttl=self.ttl_s, tags=(CACHE_TAG,))
            except _NeedsFetch:
                absent.append(item_id)
        if absent:
            fetched = self._fetch(kind, absent)
            found = {self.key(kind, i): r for i, r in fetched.items()}
            self.cache.set_many(found, ttl=self.ttl_s, tags=(CACHE_TAG,))
            for item_id in absent:
                record = fetched.get(item_id)
                if record is None:
                    self.cache.get_or_compute(
                        self.key(kind, item_id), lambda: None, tags=(CACHE_TAG,), negative_ttl=self.negative_ttl_s
                    )
                out[item_id] = record
        return out

    def _fetch(self, kind: Kind, ids: list[str]) -> dict[str, dict[str, Any]]:
        remaining = list(ids)
        found: dict[str, dict[str, Any]] = {}
        for provider in self.providers:
            asked = [i for i in remaining if provider.accepts(kind, i)]
            if not asked:
                continue
            got = provider.fetch(kind, asked)
            found.update(got)
            remaining = [i for i in remaining if i not in got]
        for record in found.values():
            self._enrich(kind, record)
        return found

    def _enrich(self, kind: Kind, record: dict[str, Any]) -> None:
        for enricher in self.enrichers:
            if record.get("provider") == enricher.name:
                continue  # it found the record itself: nothing to add
            try:
                extra = enricher.enrich(kind, record)
            except IntegrationError as exc:
                log.warning("metadata: %s enrichment of a %s skipped: %s", enricher.name, kind, exc)
                continue
            for name, value in extra.items():
                record.setdefault(name, value)

    def track(self, track_id: str) -> dict[str, Any] | None:
        """Metadata of one track (name, artists, album, popularity, duration_ms, …) or ``None`` if unknown."""
        return self.lookup("track", [track_id]).get(track_id)

    def artist(self, artist_id: str) -> dict[str, Any] | None:
        """Metadata of one artist (name, genres, popularity, followers, …) or ``None`` if unknown."""
        return self.lookup("artist", [artist_id]).get(artist_id)

    def tracks(self, track_ids: Iterable[str]) -> dict[str, dict[str, Any] | None]:
        """Metadata of many tracks (batched misses)."""
        return self.lookup("track", track_ids)

    def artists(self, artist_ids: Iterable[str]) -> dict[str, dict[str, Any] | None]:
        """Metadata of many artists (batched misses)."""
        return self.lookup("artist", artist_ids)

    # ------------------------------------------------------------ alerting
    def enrich_alert_labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        """Human-readable annotations for an alert whose labels carry ``track_id`` and/or ``artist_id``.

        Returns e.g. ``{"track_name": …, "track_artists": …, "track_album": …, "artist_name": …}`` (only what is
        known). Never raises: on the alert path a failing provider costs the annotations, not the alert.
        """
        notes: dict[str, str] = {}
        track_id, artist_id = labels.get("track_id"), labels.get("artist_id")
        try:
            if track_id:
                track = self.track(track_id)
                if track:
                    _put(notes, "track_name", track.get("name"))
                    _put(notes, "track_artists", ", ".join(str(a) for a in track.get("artists") or [] if a))
                    _put(notes, "track_album", track.get("album"))
            if artist_id:
                artist = self.artist(artist_id)
                if artist:
                    _put(notes, "artist_name", artist.get("name"))
                    _put(notes, "artist_genres", ", ".join(str(g) for g in artist.get("genres") or [] if g))
        except IntegrationError as exc:
            log.warning("metadata: alert annotations skipped: %s", exc)
        return notes


def _put(notes: dict[str, str], name: str, value: Any) -> None:
    if value is None or value == "":
        return
    text = " ".join(str(value).split())  # no control characters or newlines in an annotation
    notes[name] = text[:_MAX_ANNOTATION]


def spotify_client() -> MetadataProvider:
    """The Spotify Web API client (credentials from the environment); says which extra to install if missing."""
    try:
        from tunewatch.integrations.spotify import SpotifyMetadataClient
    except ImportError:
        from tunewatch.errors import ConfigError

        raise ConfigError(
            "SPOTIFY_CLIENT_ID is set, but the Spotify client is not installed: pip install 'tunewatch[integrations]'"
        ) from None
    return SpotifyMetadataClient()
