"""A real HTTP server on 127.0.0.1 that plays the Spotify Web API and Last.fm from recorded responses.

Routes (recordings in ``recordings/``, written by hand from the APIs' documented response shapes):

* ``POST /api/token`` — Spotify client-credentials token (checks the ``Basic`` header);
* ``GET /v1/tracks?ids=…`` and ``GET /v1/artists?ids=…`` — "Get Several Tracks/Artists": the recorded object of
  each known id, ``null`` for an unknown id, in request order (checks the ``Bearer`` token);
* ``GET /2.0/?method=track.getInfo|artist.getInfo&…`` — Last.fm, by name or mbid; error 6 when unknown,
  error 10 for a wrong API key.

``inject(path, status, recording, headers, times)`` makes the next matching requests fail (429 with
``Retry-After``, 500, …); ``requests`` logs every request so tests can count calls.
"""

from __future__ import annotations

import base64
import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

RECORDINGS = Path(__file__).parent / "recordings"
CLIENT_ID = "test-client-id"
CLIENT_SECRET = "test-client-secret-never-real"
LASTFM_KEY = "test-lastfm-key-never-real"


def recording(name: str) -> Any:
    """The parsed JSON of ``recordings/<name>.json``."""
    return json.loads((RECORDINGS / f"{name}.json").read_text(encoding="utf-8"))


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]


@dataclass
class Fault:
    path: str
    status: int
    body: Any
    headers: dict[str, str]


@dataclass
class FakeApis:
    """Spotify and Last.fm on one loopback port (``base`` is ``http://127.0.0.1:<port>``)."""

    requests: list[Request] = field(default_factory=list)
    faults: deque[Fault] = field(default_factory=deque)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        tracks = recording("spotify_tracks")["tracks"]
        artists = recording("spotify_artists")["artists"]
        self.spotify = {"tracks": {t["id"]: t for t in tracks}, "artists": {a["id"]: a for a in artists}}
        track, artist = recording("lastfm_track_getinfo"), recording("lastfm_artist_getinfo")
        t, a = track["track"], artist["artist"]
        self.lastfm_tracks = {t["mbid"]: track, (t["artist"]["name"].lower(), t["name"].lower()): track}
        self.lastfm_artists = {a["mbid"]: artist, a["name"].lower(): artist}

    # --------------------------------------------------------------- control
    def start(self) -> FakeApis:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        server.daemon_threads = True
        self._server = server
        threading.Thread(target=server.serve_forever, args=(0.02,), name="fake-apis", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def base(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def inject(
        self, path: str, status: int, body: Any = None, headers: dict[str, str] | None = None, times: int = 1
    ) -> None:
        """The next ``times`` requests to ``path`` get ``status`` with ``body`` (JSON) and ``headers``."""
        for _ in range(times):
            self.faults.append(Fault(path, status, body, headers or {}))

    def count(self, path: str) -> int:
        """Requests received for ``path``."""
        return sum(r.path == path for r in self.requests)

    # --------------------------------------------------------------- serving
    def _fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.path == path:
                    self.faults.remove(fault)
                    return fault
        return None

    def answer(self, method: str, raw_path: str, headers: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        parts = urlsplit(raw_path)
        path = parts.path.rstrip("/") or "/"
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        with self._lock:
            self.requests.append(Request(method, path, query))
        fault = self._fault(path)
        if fault is not None:
            return fault.status, fault.body, fault.headers
        if method == "POST" and path == "/api/token":
            expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
            if headers.get("authorization") != f"Basic {expected}":
                return 400, recording("spotify_error_401_token"), {}
            return 200, recording("spotify_token"), {}
        if method == "GET" and path in ("/v1/tracks", "/v1/artists"):
            if headers.get("authorization") != f"Bearer {recording('spotify_token')['access_token']}":
                return 401, {"error": {"status": 401, "message": "No token provided"}}, {}
            kind = path.rsplit("/", 1)[-1]
            ids = [i for i in query.get("ids", "").split(",") if i]
            if not ids or len(ids) > 50:
                return 400, {"error": {"status": 400, "message": "Invalid ids"}}, {}
            return 200, {kind: [self.spotify[kind].get(i) for i in ids]}, {}
        if method == "GET" and path == "/2.0":
            return self._lastfm(query)
        return 404, {"error": {"status": 404, "message": "Service not found"}}, {}

    def _lastfm(self, query: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        if query.get("api_key") != LASTFM_KEY:
            return 403, recording("lastfm_error_10"), {}
        method = query.get("method", "").lower()
        if method == "track.getinfo":
            key: Any = query.get("mbid") or (query.get("artist", "").lower(), query.get("track", "").lower())
            found = self.lastfm_tracks.get(key)
        elif method == "artist.getinfo":
            found = self.lastfm_artists.get(query.get("mbid") or query.get("artist", "").lower())
        else:
            return 400, {"error": 3, "message": "Invalid Method - No method with that name in this package"}, {}
        if found is None:
            return 404, recording("lastfm_error_6"), {}
        return 200, found, {}


def _handler(apis: FakeApis) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, body, extra = apis.answer(method, self.path, headers)
            payload = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
