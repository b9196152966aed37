"""Spotify metadata client against a real local HTTP server (threading ``http.server`` on a free loopback port)
that serves recorded "Get Several Tracks/Artists" responses and injects 429/5xx faults — no mocks of spotipy."""

from __future__ import annotations

import logging

import pytest
from pydantic import SecretStr

from tests.integrations.conftest import RecordingSleep
from tests.integrations.fake_apis import CLIENT_SECRET, FakeApis, recording
from tunewatch.integrations.errors import IntegrationError
from tunewatch.integrations.retry import RetryPolicy
from tunewatch.integrations.spotify import SpotifyMetadataClient, SpotifySettings, spotify_id

pytestmark = pytest.mark.integration

KNOWN = "4uLU6hMCjMI75M1A2tKUQC"
KNOWN_2 = "0VjIjW4GlUZAMYd2vXMi3b"
UNKNOWN = "7ouMYWpwJ422jRcDASZB7P"
ARTIST = "0OdUWJ0sBjDrqHygGUXeCF"


def test_tracks_are_fetched_in_one_batch_with_unknown_ids_left_out(
    spotify: SpotifyMetadataClient, apis: FakeApis
) -> None:
    found = spotify.fetch("track", [KNOWN, f"spotify:track:{KNOWN_2}", UNKNOWN])
    assert set(found) == {KNOWN, f"spotify:track:{KNOWN_2}"}
    track = found[KNOWN]
    assert track["name"] == "Coastline Lights"
    assert track["artists"] == ["Neon Harbor", "Lia Moreno"]
    assert track["artist_ids"] == [ARTIST, "3dBVyJ7JuOMt4GE9607Qin"]
    assert (track["album"], track["popularity"], track["duration_ms"]) == ("Night Drive", 74, 207959)
    assert apis.count("/v1/tracks") == 1
    assert apis.requests[-1].query["ids"] == f"{KNOWN},{KNOWN_2},{UNKNOWN}"


def test_artists_are_fetched(spotify: SpotifyMetadataClient) -> None:
    found = spotify.fetch("artist", [ARTIST])
    assert found[ARTIST]["name"] == "Neon Harbor"
    assert found[ARTIST]["genres"] == ["synthwave", "indie pop"]
    assert found[ARTIST]["followers"] == 1250340


def test_ids_that_are_not_spotify_ids_make_no_request(spotify: SpotifyMetadataClient, apis: FakeApis) -> None:
    assert spotify.fetch("track", ["trk-000001", "not an id", ""]) == {}
    assert apis.requests == []
    assert spotify_id(f"spotify:artist:{ARTIST}") == ARTIST


def test_more_than_50_ids_are_split_into_batches_of_at_most_50(spotify: SpotifyMetadataClient, apis: FakeApis) -> None:
    ids = [KNOWN] + [f"{n:022d}" for n in range(119)]
    found = spotify.fetch("track", ids)
    assert set(found) == {KNOWN}
    batches = [r.query["ids"].split(",") for r in apis.requests if r.path == "/v1/tracks"]
    assert [len(b) for b in batches] == [50, 50, 20]
    assert sorted(i for b in batches for i in b) == sorted(ids)


def test_429_is_retried_after_the_servers_retry_after(
    spotify: SpotifyMetadataClient, apis: FakeApis, sleep: RecordingSleep
) -> None:
    apis.inject("/v1/tracks", 429, recording("spotify_error_429"), headers={"Retry-After": "7"})
    found = spotify.fetch("track", [KNOWN])
    assert found[KNOWN]["name"] == "Coastline Lights"
    assert apis.count("/v1/tracks") == 2
    assert sleep.waits == [7.0]


def test_500_is_retried_with_backoff(spotify: SpotifyMetadataClient, apis: FakeApis, sleep: RecordingSleep) -> None:
    apis.inject("/v1/artists", 500, recording("spotify_error_500"))
    assert ARTIST in spotify.fetch("artist", [ARTIST])
    assert apis.count("/v1/artists") == 2
    assert len(sleep.waits) == 1
    assert 0.5 <= sleep.waits[0] <= 1.0  # initial backoff plus at most one jitter


def test_persistent_5xx_raises_an_error_naming_endpoint_and_status(
    spotify: SpotifyMetadataClient, apis: FakeApis, sleep: RecordingSleep
) -> None:
    apis.inject("/v1/tracks", 503, {"error": {"status": 503, "message": "Service unavailable"}}, times=5)
    with pytest.raises(IntegrationError) as info:
        spotify.fetch("track", [KNOWN])
    assert info.value.status == 503
    assert str(info.value) == "spotify GET /v1/tracks: HTTP 503: Service unavailable"
    assert apis.count("/v1/tracks") == 3  # the policy's attempts
    assert len(sleep.waits) == 2


def test_client_errors_are_not_retried(spotify: SpotifyMetadataClient, apis: FakeApis, sleep: RecordingSleep) -> None:
    apis.inject("/v1/tracks", 403, {"error": {"status": 403, "message": "Forbidden"}})
    with pytest.raises(IntegrationError, match=r"spotify GET /v1/tracks: HTTP 403: Forbidden"):
        spotify.fetch("track", [KNOWN])
    assert apis.count("/v1/tracks") == 1
    assert sleep.waits == []


def test_a_retry_after_beyond_the_cap_is_not_waited_for(
    spotify: SpotifyMetadataClient, apis: FakeApis, sleep: RecordingSleep
) -> None:
    apis.inject("/v1/tracks", 429, recording("spotify_error_429"), headers={"Retry-After": "3600"})
    with pytest.raises(IntegrationError) as info:
        spotify.fetch("track", [KNOWN])
    assert (info.value.status, info.value.retry_after) == (429, 3600.0)
    assert sleep.waits == []


def test_refused_credentials_name_the_token_endpoint_and_never_leak_the_secret(
    spotify_settings: SpotifySettings, apis: FakeApis, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = spotify_settings.model_copy(update={"client_secret": SecretStr("wrong-secret-value-123")})
    client = SpotifyMetadataClient(wrong, retry=RetryPolicy(attempts=1))
    with caplog.at_level(logging.DEBUG), pytest.raises(IntegrationError) as info:
        client.fetch("track", [KNOWN])
    assert info.value.endpoint == "spotify POST token"
    assert info.value.status == 400  # Spotify answers invalid_client with 400
    assert "invalid_client" in str(info.value)
    assert "wrong-secret-value-123" not in str(info.value)
    assert "wrong-secret-value-123" not in caplog.text
    assert apis.count("/v1/tracks") == 0


def test_secret_and_token_never_appear_in_debug_logs(
    spotify: SpotifyMetadataClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        spotify.fetch("track", [KNOWN])
    assert caplog.records, "spotipy logs requests at DEBUG; the test must see them"
    assert CLIENT_SECRET not in caplog.text
    assert recording("spotify_token")["access_token"] not in caplog.text
    assert "<redacted>" in caplog.text


def test_missing_credentials_say_which_variables_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPOTIFY_CLIENT_ID", raising=False)
    monkeypatch.delenv("SPOTIFY_CLIENT_SECRET", raising=False)
    with pytest.raises(IntegrationError, match="SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET must be set"):
        SpotifyMetadataClient()


def test_network_failure_is_retried_then_reported(spotify_settings: SpotifySettings, sleep: RecordingSleep) -> None:
    dead = spotify_settings.model_copy(
        update={"api_base": "http://127.0.0.1:9/v1/", "token_url": "http://127.0.0.1:9/t"}
    )
    client = SpotifyMetadataClient(dead, retry=RetryPolicy(attempts=2, sleep=sleep))
    with pytest.raises(IntegrationError) as info:
        client.fetch("track", [KNOWN])
    assert info.value.status is None
    assert "network error" in str(info.value)
    assert len(sleep.waits) == 1


def test_token_endpoint_outage_is_retried(
    spotify_settings: SpotifySettings, apis: FakeApis, sleep: RecordingSleep
) -> None:
    apis.inject("/api/token", 503, {"error": "server_error"})
    client = SpotifyMetadataClient(spotify_settings, retry=RetryPolicy(attempts=2, sleep=sleep))
    assert KNOWN in client.fetch("track", [KNOWN])
    assert apis.count("/api/token") == 2
    assert len(sleep.waits) == 1
