"""Fixtures of the integration tests: the fake Spotify/Last.fm server, clients pointed at it, a simulated sleep."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from tests.integrations.fake_apis import CLIENT_ID, CLIENT_SECRET, LASTFM_KEY, FakeApis
from tunewatch.integrations.lastfm import LastfmClient, LastfmSettings
from tunewatch.integrations.retry import RetryPolicy
from tunewatch.integrations.spotify import SpotifyMetadataClient, SpotifySettings


class RecordingSleep:
    """A stand-in for ``time.sleep`` that records the waits instead of waiting (a simulated clock)."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def apis() -> Iterator[FakeApis]:
    server = FakeApis().start()
    yield server
    server.stop()


@pytest.fixture
def sleep() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
def retry(sleep: RecordingSleep) -> RetryPolicy:
    return RetryPolicy(attempts=3, backoff_s=0.5, backoff_max_s=4.0, max_retry_after_s=30.0, sleep=sleep)


@pytest.fixture
def spotify_settings(apis: FakeApis) -> SpotifySettings:
    return SpotifySettings(
        client_id=CLIENT_ID,
        client_secret=SecretStr(CLIENT_SECRET),
        api_base=f"{apis.base}/v1/",
        token_url=f"{apis.base}/api/token",
        timeout_s=5.0,
    )


@pytest.fixture
def spotify(spotify_settings: SpotifySettings, retry: RetryPolicy) -> Iterator[SpotifyMetadataClient]:
    client = SpotifyMetadataClient(spotify_settings, retry=retry)
    yield client
    client.close()


@pytest.fixture
def lastfm_settings(apis: FakeApis) -> LastfmSettings:
    return LastfmSettings(api_key=SecretStr(LASTFM_KEY), api_base=f"{apis.base}/2.0/")


@pytest.fixture
def lastfm(lastfm_settings: LastfmSettings, retry: RetryPolicy) -> Iterator[LastfmClient]:
    client = LastfmClient(lastfm_settings, retry=retry)
    yield client
    client.close()
