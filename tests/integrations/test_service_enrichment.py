"""The live service names the track and artist of an alert, from Spotify (recorded responses, local server)."""

from __future__ import annotations

import pytest

from tests.integrations.conftest import CLIENT_ID, CLIENT_SECRET
from tests.integrations.fake_apis import FakeApis
from tunewatch.alert.model import Alert
from tunewatch.server import LiveService

TRACK = "4uLU6hMCjMI75M1A2tKUQC"


def test_firing_alert_on_a_track_gets_its_names(apis: FakeApis, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPOTIFY_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("SPOTIFY_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("SPOTIFY_API_BASE", f"{apis.base}/v1/")
    monkeypatch.setenv("SPOTIFY_TOKEN_URL", f"{apis.base}/api/token")
    monkeypatch.delenv("LASTFM_API_KEY", raising=False)
    seen: list[Alert] = []
    service = LiveService(on_alert=seen.append)
    assert service.metadata is not None
    alert = Alert(labels={"alertname": "PlaybackFailuresUp", "track_id": TRACK}, annotations={}, status="firing",
                  starts_at=0)  # fmt: skip
    service._alert(alert)
    assert seen[0].annotations["track_name"] == "Coastline Lights"
    service._alert(Alert(labels=dict(alert.labels), annotations={}, status="firing", starts_at=60_000))
    assert apis.count("/v1/tracks") == 1  # the second alert was named from the cache


def test_without_credentials_there_is_no_metadata_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("SPOTIFY_CLIENT_ID", "SPOTIFY_CLIENT_SECRET", "LASTFM_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    assert LiveService().metadata is None
