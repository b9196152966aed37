"""Last.fm client against a real local HTTP server (threading ``http.server`` on a free loopback port) serving
recorded ``track.getInfo`` / ``artist.getInfo`` responses and Last.fm error objects."""

from __future__ import annotations

import logging

import pytest

from tests.integrations.conftest import RecordingSleep
from tests.integrations.fake_apis import LASTFM_KEY, FakeApis, recording
from tunewatch.integrations.errors import IntegrationError
from tunewatch.integrations.lastfm import LastfmClient, LastfmSettings

pytestmark = pytest.mark.integration

TRACK_MBID = "5f2d4a7e-1b3c-4d5e-8f90-a1b2c3d4e5f6"
ARTIST_MBID = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d"


def test_track_info_by_name(lastfm: LastfmClient, apis: FakeApis) -> None:
    info = lastfm.track_info(artist="Neon Harbor", track="Coastline Lights")
    assert info is not None
    assert info["name"] == "Coastline Lights"
    assert info["artists"] == ["Neon Harbor"]
    assert (info["album"], info["duration_ms"]) == ("Night Drive", 207000)
    assert (info["listeners"], info["playcount"]) == (482113, 3120456)
    assert info["tags"] == ["synthwave", "electronic", "night drive"]
    query = apis.requests[-1].query
    assert (query["method"], query["format"], query["autocorrect"]) == ("track.getInfo", "json", "1")


def test_artist_info_by_mbid(lastfm: LastfmClient) -> None:
    info = lastfm.artist_info(mbid=ARTIST_MBID)
    assert info is not None
    assert (info["name"], info["listeners"], info["tags"]) == ("Neon Harbor", 951234, ["synthwave"])


def test_unknown_track_is_none(lastfm: LastfmClient, apis: FakeApis) -> None:
    assert lastfm.track_info(artist="Nobody", track="Nothing") is None
    assert apis.count("/2.0") == 1  # "not found" is an answer, not a failure: no retry


def test_rate_limit_error_29_is_retried(lastfm: LastfmClient, apis: FakeApis, sleep: RecordingSleep) -> None:
    apis.inject("/2.0", 429, recording("lastfm_error_29"), headers={"Retry-After": "2"})
    info = lastfm.artist_info(artist="Neon Harbor")
    assert info is not None and info["name"] == "Neon Harbor"
    assert sleep.waits == [2.0]
    assert apis.count("/2.0") == 2


def test_error_29_with_http_200_is_still_treated_as_rate_limit(
    lastfm: LastfmClient, apis: FakeApis, sleep: RecordingSleep
) -> None:
    apis.inject("/2.0", 200, recording("lastfm_error_29"))
    assert lastfm.track_info(mbid=TRACK_MBID) is not None
    assert len(sleep.waits) == 1


def test_server_error_then_success(lastfm: LastfmClient, apis: FakeApis, sleep: RecordingSleep) -> None:
    apis.inject("/2.0", 500, None)
    assert lastfm.track_info(mbid=TRACK_MBID) is not None
    assert apis.count("/2.0") == 2


def test_wrong_api_key_fails_without_retry_and_without_leaking_the_key(
    lastfm_settings: LastfmSettings, apis: FakeApis, caplog: pytest.LogCaptureFixture, sleep: RecordingSleep
) -> None:
    from pydantic import SecretStr

    from tunewatch.integrations.retry import RetryPolicy

    client = LastfmClient(
        lastfm_settings.model_copy(update={"api_key": SecretStr("bad-key-abcdef")}), retry=RetryPolicy(sleep=sleep)
    )
    with caplog.at_level(logging.DEBUG), pytest.raises(IntegrationError) as info:
        client.track_info(mbid=TRACK_MBID)
    assert str(info.value).startswith("lastfm GET track.getInfo: HTTP 403: error 10: Invalid API key")
    assert "bad-key-abcdef" not in str(info.value)
    assert "bad-key-abcdef" not in caplog.text
    assert sleep.waits == []


def test_api_key_is_scrubbed_from_httpx_request_log(lastfm: LastfmClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="httpx"):
        lastfm.track_info(mbid=TRACK_MBID)
    assert "api_key=<redacted>" in caplog.text
    assert LASTFM_KEY not in caplog.text


def test_as_a_provider_it_resolves_mbids_only(lastfm: LastfmClient, apis: FakeApis) -> None:
    found = lastfm.fetch("track", [TRACK_MBID, "4uLU6hMCjMI75M1A2tKUQC", "00000000-0000-4000-8000-000000000000"])
    assert list(found) == [TRACK_MBID]
    assert apis.count("/2.0") == 2  # the Spotify id was never sent


def test_enrich_adds_listeners_and_tags_by_name(lastfm: LastfmClient) -> None:
    extra = lastfm.enrich("track", {"name": "Coastline Lights", "artists": ["Neon Harbor"]})
    assert extra["lastfm_listeners"] == 482113
    assert extra["lastfm_tags"][:1] == ["synthwave"]
    assert lastfm.enrich("artist", {"name": "Unknown Artist"}) == {}
