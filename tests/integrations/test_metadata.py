"""MetadataService: read-through caching (memory cache on a simulated clock) in front of the Spotify and Last.fm
clients, which talk to a real local HTTP server (threading ``http.server`` on a free loopback port) serving
recorded responses; requests are counted on the server."""

from __future__ import annotations

import shutil
from typing import Any

import pytest

from tests.integrations.fake_apis import FakeApis
from tunewatch.cache import MusicStreamingCacheManager
from tunewatch.clock import ManualClock
from tunewatch.integrations.lastfm import LastfmClient
from tunewatch.integrations.metadata import DAY_S, MetadataService
from tunewatch.integrations.spotify import SpotifyMetadataClient

pytestmark = pytest.mark.integration

TRACK = "4uLU6hMCjMI75M1A2tKUQC"
TRACK_2 = "0VjIjW4GlUZAMYd2vXMi3b"
UNKNOWN = "7ouMYWpwJ422jRcDASZB7P"
ARTIST = "0OdUWJ0sBjDrqHygGUXeCF"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_000_000)


@pytest.fixture
def service(spotify: SpotifyMetadataClient, lastfm: LastfmClient, clock: ManualClock) -> MetadataService:
    return MetadataService([spotify, lastfm], MusicStreamingCacheManager(clock=clock), enrichers=[lastfm])


def test_lookup_merges_spotify_and_lastfm(service: MetadataService) -> None:
    track = service.track(TRACK)
    assert track is not None
    assert (track["name"], track["album"], track["popularity"], track["duration_ms"]) == (
        "Coastline Lights",
        "Night Drive",
        74,
        207959,
    )
    assert track["provider"] == "spotify"
    assert track["lastfm_listeners"] == 482113


def test_second_lookup_is_served_from_the_cache_without_any_request(service: MetadataService, apis: FakeApis) -> None:
    first = service.tracks([TRACK, TRACK_2])
    before = len(apis.requests)
    assert before > 0
    second = service.tracks([TRACK, TRACK_2])
    assert second == first
    assert len(apis.requests) == before
    assert service.cache.get(MetadataService.key("track", TRACK))["name"] == "Coastline Lights"


def test_misses_of_one_call_are_fetched_in_one_batch(service: MetadataService, apis: FakeApis) -> None:
    service.tracks([TRACK])
    service.tracks([TRACK, TRACK_2, UNKNOWN])
    batches = [r.query["ids"] for r in apis.requests if r.path == "/v1/tracks"]
    assert batches == [TRACK, f"{TRACK_2},{UNKNOWN}"]  # the cached id is not asked again


def test_unknown_id_is_negatively_cached(service: MetadataService, apis: FakeApis, clock: ManualClock) -> None:
    assert service.track(UNKNOWN) is None
    assert service.track(UNKNOWN) is None
    assert apis.count("/v1/tracks") == 1
    assert service.cache.stats()["negative_hits"] >= 1
    clock.advance(DAY_S + 1)  # negative entries live a day too
    assert service.track(UNKNOWN) is None
    assert apis.count("/v1/tracks") == 2


def test_entries_expire_after_a_day(service: MetadataService, apis: FakeApis, clock: ManualClock) -> None:
    service.artist(ARTIST)
    clock.advance(DAY_S - 60)
    service.artist(ARTIST)
    assert apis.count("/v1/artists") == 1
    clock.advance(120)
    service.artist(ARTIST)
    assert apis.count("/v1/artists") == 2


def test_enrich_alert_labels_gives_readable_names(service: MetadataService) -> None:
    notes = service.enrich_alert_labels(
        {"alertname": "SkipRateHigh", "metric": "skip_rate", "track_id": TRACK, "artist_id": ARTIST}
    )
    assert notes == {
        "track_name": "Coastline Lights",
        "track_artists": "Neon Harbor, Lia Moreno",
        "track_album": "Night Drive",
        "artist_name": "Neon Harbor",
        "artist_genres": "synthwave, indie pop",
    }
    assert service.enrich_alert_labels({"alertname": "Global", "market": "BR"}) == {}
    assert service.enrich_alert_labels({"track_id": "trk-000001"}) == {}  # not a Spotify id: no request, no notes


def test_enrich_alert_labels_never_raises_when_spotify_is_down(
    service: MetadataService, apis: FakeApis, caplog: pytest.LogCaptureFixture
) -> None:
    apis.inject("/v1/tracks", 503, {"error": {"status": 503, "message": "down"}}, times=3)  # every attempt
    assert service.enrich_alert_labels({"track_id": TRACK}) == {}
    assert "spotify GET /v1/tracks: HTTP 503" in caplog.text
    # nothing was cached for the failed id: it is asked again once Spotify is back
    assert service.enrich_alert_labels({"track_id": TRACK})["track_name"] == "Coastline Lights"


def test_lastfm_failure_only_costs_the_enrichment(service: MetadataService, apis: FakeApis) -> None:
    apis.inject("/2.0", 500, None, times=10)
    track = service.track(TRACK)
    assert track is not None and track["name"] == "Coastline Lights"
    assert "lastfm_listeners" not in track


def test_mbids_go_to_lastfm_and_spotify_ids_to_spotify(service: MetadataService, apis: FakeApis) -> None:
    mbid = "5f2d4a7e-1b3c-4d5e-8f90-a1b2c3d4e5f6"
    found = service.tracks([TRACK, mbid])
    assert found[mbid] is not None and found[mbid]["provider"] == "lastfm"
    assert found[TRACK] is not None and found[TRACK]["provider"] == "spotify"
    assert [r.query["ids"] for r in apis.requests if r.path == "/v1/tracks"] == [TRACK]
    # Last.fm: the mbid lookup, and the enrichment of Spotify's record by name; its own record is not re-enriched
    assert [r.query.get("mbid", "by name") for r in apis.requests if r.path == "/2.0"] == [mbid, "by name"]


class _Static:
    """A provider without HTTP, to show the service's contract on its own."""

    name = "static"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def accepts(self, kind: str, item_id: str) -> bool:
        return True

    def fetch(self, kind: str, ids: Any) -> dict[str, dict[str, Any]]:
        ids = list(ids)
        self.calls.append(ids)
        return {i: {"name": f"{kind} {i}"} for i in ids if i.startswith("ok")}


def test_service_contract_with_a_plain_provider() -> None:
    provider = _Static()
    service = MetadataService([provider], MusicStreamingCacheManager(clock=ManualClock()))
    assert service.tracks(["ok1", "no1", "ok1", ""]) == {"ok1": {"name": "track ok1"}, "no1": None}
    assert service.tracks(["ok1", "no1"]) == {"ok1": {"name": "track ok1"}, "no1": None}
    assert provider.calls == [["ok1", "no1"]]


def test_redis_cache_is_shared_between_service_instances(spotify: SpotifyMetadataClient, apis: FakeApis) -> None:
    from tests.cache.servers import REDIS_SERVER, RedisProcess

    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    server = RedisProcess().start()
    try:
        caches = [MusicStreamingCacheManager(redis_url=server.url, namespace="twmeta") for _ in range(2)]
        first, second = (MetadataService([spotify], cache) for cache in caches)
        assert first.track(TRACK) is not None and first.track(UNKNOWN) is None
        assert second.track(TRACK) == first.track(TRACK)  # another process's copy, from Redis
        assert second.track(UNKNOWN) is None
        assert apis.count("/v1/tracks") == 2
        assert server.client().pttl(caches[0].full_key(MetadataService.key("track", TRACK))) > (DAY_S - 60) * 1000
        for cache in caches:
            cache.close()
    finally:
        server.stop()
        shutil.rmtree(server.workdir, ignore_errors=True)
