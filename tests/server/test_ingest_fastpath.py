"""The raw ASGI ingest path: bodies in pieces, pre-encoded answers, header handling, errors, waves of requests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

import pytest
from starlette.types import Message

from tests.conftest import BASE_MS
from tests.server.rules import plays_seen_rules
from tunewatch.alert.rules import parse_rules
from tunewatch.server import LiveService, create_app
from tunewatch.server.batcher import IngestBatcher
from tunewatch.server.decode import Payload, decode_body
from tunewatch.server.report import IngestReport
from tunewatch.server.settings import ServerSettings

Play = Callable[..., dict[str, Any]]
_JSON_TYPE = (b"content-type", b"application/json")


def _service(**settings: Any) -> LiveService:
    return LiveService(
        parse_rules(plays_seen_rules()),
        clock=lambda: BASE_MS / 1000 + 600,
        settings=ServerSettings(**settings),
        db=":memory:",
    )


def _call(
    service: LiveService, chunks: Sequence[bytes], headers: list[tuple[bytes, bytes]]
) -> tuple[int, dict[bytes, bytes], bytes]:
    """POST /api/v1/events straight to the ASGI app, the body in ``chunks``; status, headers and body."""
    app = create_app(service)
    messages = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)
    ] or [{"type": "http.request", "body": b"", "more_body": False}]
    sent: list[Message] = []
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/events",
        "raw_path": b"/api/v1/events",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
    }

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    async def run() -> None:
        await app(scope, receive, send)
        assert app.ingest_handler is not None
        await app.ingest_handler.batcher.close()

    asyncio.run(run())
    start, body = sent
    return start["status"], dict(start["headers"]), body["body"]


def test_a_body_in_pieces_is_read_whole(play: Play) -> None:
    text = json.dumps([play(i, BASE_MS + i) for i in range(3)]).encode()
    status, headers, body = _call(
        _service(), [text[:7], text[7:50], text[50:]], [(b"content-type", b"application/json")]
    )
    assert status == 200 and headers[b"content-type"] == b"application/json"
    assert int(headers[b"content-length"]) == len(body)
    assert json.loads(body) == {
        "received": 3, "accepted": 3, "rejected": 0, "duplicates": 0, "errors": [], "rejections": []
    }  # fmt: skip


def test_a_body_growing_past_the_limit_in_pieces_is_refused(play: Play) -> None:
    text = json.dumps([play(i, BASE_MS + i) for i in range(20)]).encode()
    pieces = [text[i : i + 100] for i in range(0, len(text), 100)]
    status, _, body = _call(_service(max_body_bytes=1000), pieces, [(b"content-type", b"application/json")])
    assert status == 413 and "larger than the limit of 1000 bytes" in json.loads(body)["detail"]


@pytest.mark.parametrize(
    ("settings", "content_type", "encoding"),
    [
        ({}, b"application/json", None),
        ({}, b"application/x-ndjson", None),
        ({"max_events_per_request": 3}, b"application/x-ndjson", None),  # 413: too many lines
        ({"max_events_per_request": 3}, b"application/json", None),  # 413: too many elements
        ({"max_body_bytes": 300}, b"application/json", None),  # 413: too large as sent
        ({"max_decoded_bytes": 300}, b"application/x-ndjson", None),  # 413: too large decoded
        ({}, b"application/json", b"identity"),
        ({}, b"text/plain", None),  # 415
    ],
)
def test_a_body_in_one_piece_is_answered_as_one_in_pieces(
    play: Play, settings: dict[str, int], content_type: bytes, encoding: bytes | None
) -> None:
    """The one-piece shortcut (no streaming decoder) gives every answer the streaming read gives."""
    events = [play(i, BASE_MS + i) for i in range(5)]
    events[2]["ms_played"] = "x"  # one rejected event: its answer names it
    ndjson = content_type == b"application/x-ndjson"
    text = b"".join(json.dumps(e).encode() + b"\n" for e in events) if ndjson else json.dumps(events).encode()
    headers = [(b"content-type", content_type)] + ([(b"content-encoding", encoding)] if encoding else [])
    whole = _call(_service(**settings), [text], headers)
    pieces = _call(_service(**settings), [text[:40], text[40:]], headers)
    assert whole[0] == pieces[0] and json.loads(whole[2]) == json.loads(pieces[2])
    assert whole[0] in (200, 413, 415)


def test_answers_with_rejections_and_duplicates_are_encoded_per_request(play: Play) -> None:
    events = [play(1, BASE_MS), play(1, BASE_MS), {**play(2, BASE_MS), "market": "??"}]
    status, _, body = _call(_service(), [json.dumps(events).encode()], [(b"content-type", b"application/json")])
    report = json.loads(body)
    assert status == 200
    assert (report["received"], report["accepted"], report["rejected"], report["duplicates"]) == (3, 1, 1, 1)
    assert report["rejections"][0]["index"] == 2 and report["rejections"][0]["event_id"] == "e2"


def test_the_first_of_repeated_headers_counts(play: Play) -> None:
    ndjson = json.dumps(play(1, BASE_MS)).encode() + b"\n"
    headers = [(b"content-type", b"application/x-ndjson"), (b"content-type", b"application/msgpack")]
    status, _, body = _call(_service(), [ndjson], headers)
    assert status == 200 and json.loads(body)["accepted"] == 1


def test_rate_limited_requests_get_429_with_retry_after(play: Play) -> None:
    service = _service(rate_limit_per_address="1/minute")
    app = create_app(service)
    text = json.dumps([play(1, BASE_MS)]).encode()
    answers: list[tuple[int, dict[bytes, bytes]]] = []

    async def run() -> None:
        for _ in range(2):
            sent: list[Message] = []
            scope = {"type": "http", "method": "POST", "path": "/api/v1/events", "headers": [_JSON_TYPE],
                     "client": ("10.0.0.1", 1), "query_string": b""}  # fmt: skip

            async def receive() -> dict[str, Any]:
                return {"type": "http.request", "body": text, "more_body": False}

            async def send(message: Message, sent: list[Message] = sent) -> None:
                sent.append(message)

            await app(scope, receive, send)
            answers.append((sent[0]["status"], dict(sent[0]["headers"])))
        assert app.ingest_handler is not None
        await app.ingest_handler.batcher.close()

    asyncio.run(run())
    assert answers[0][0] == 200
    assert answers[1][0] == 429 and int(answers[1][1][b"retry-after"]) >= 1


class FailingService(LiveService):
    """A live service whose pipeline step fails."""

    def ingest_payloads(
        self, payloads: Sequence[Payload], on_ready: Callable[[list[IngestReport], Future[None]], None] | None = None
    ) -> list[IngestReport]:
        raise RuntimeError("pipeline broke")


def test_an_unexpected_error_answers_500_and_propagates(play: Play) -> None:
    service = FailingService(parse_rules(plays_seen_rules()), clock=lambda: BASE_MS / 1000 + 600, db=":memory:")
    with pytest.raises(RuntimeError, match="pipeline broke"):
        _call(service, [json.dumps([play(1, BASE_MS)]).encode()], [(b"content-type", b"application/json")])


class CountingService(LiveService):
    """A live service that records the size of every step it runs."""

    steps: list[int]

    def ingest_payloads(
        self, payloads: Sequence[Payload], on_ready: Callable[[list[IngestReport], Future[None]], None] | None = None
    ) -> list[IngestReport]:
        self.steps.append(len(payloads))
        return super().ingest_payloads(payloads, on_ready)


def test_clients_coming_back_at_different_moments_share_the_next_step(play: Play) -> None:
    """Each client sends its next request a different number of loop passes after its answer (as network
    round trips spread them): the worker waits for all of them instead of running the first few alone."""
    service = CountingService(clock=lambda: BASE_MS / 1000 + 600, db=":memory:")
    service.steps = []
    clients, rounds = 8, 3

    async def scenario() -> list[IngestReport]:
        batcher = IngestBatcher(service, linger_s=30.0, quiet_s=0.5)

        async def client(c: int) -> list[IngestReport]:
            reports = []
            for r in range(rounds):
                body = json.dumps([play(c * 100 + r, BASE_MS + r)]).encode()
                reports.append(await batcher.submit(decode_body(body, "application/json")))
                for _ in range(c * 3):  # this client's "round trip"
                    await asyncio.sleep(0)
            return reports

        results = await asyncio.gather(*(client(c) for c in range(clients)))
        await batcher.close()
        return [r for rs in results for r in rs]

    reports = asyncio.run(scenario())
    assert [(r.received, r.accepted) for r in reports] == [(1, 1)] * clients * rounds
    assert service.steps == [clients] * rounds
