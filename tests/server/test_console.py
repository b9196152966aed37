"""The web console in a real headless Chromium: alerts shown safely, a silence created and listed."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BASE_MS
from tests.server.rules import plays_seen_rules
from tests.server.servers import Browser, chromium_binary, uvicorn_thread
from tunewatch.alert.rules import parse_rules
from tunewatch.server import LiveService, create_app

pytestmark = pytest.mark.integration

HOSTILE_RULES = plays_seen_rules(
    dimensions="market", summary='<img src=x onerror="window.pwned=1"> plays at {{ $value }}'
)


@pytest.fixture
def browser() -> Iterator[Browser]:
    binary = chromium_binary()
    if binary is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium)")
    b = Browser(binary)
    try:
        yield b
    finally:
        b.close()


def test_console_lists_alerts_safely_and_creates_a_silence(
    browser: Browser, play: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    service = LiveService(parse_rules(HOSTILE_RULES), clock=lambda: BASE_MS / 1000 + 600, db=tmp_path / "tw.db")
    with uvicorn_thread(create_app(service)) as base:
        import httpx

        events = [play(i, BASE_MS + i * 1000) for i in range(300)]
        json_type = {"content-type": "application/json"}
        posted = httpx.post(base + "/api/v1/events", content=json.dumps(events), headers=json_type)
        assert posted.json()["accepted"] == 300
        browser.call("Page.enable")
        browser.call("Page.navigate", url=base + "/")
        browser.wait_for("document.querySelectorAll('#alerts tbody tr[data-fingerprint]').length > 0")
        summary = browser.evaluate("document.querySelector('#alerts tbody tr td:nth-child(4) div').textContent")
        assert summary.startswith("<img src=x")  # shown as text ...
        assert browser.evaluate("document.querySelectorAll('#alerts img').length === 0 && !window.pwned")  # ... inert
        browser.wait_for("document.querySelector('#series-select').options.length > 0")
        browser.wait_for("document.querySelector('#chart svg polyline.value') !== null")

        browser.evaluate(
            """
            document.querySelector('#silence-matchers').value = 'market=BR';
            document.querySelector('#silence-comment').value = 'cdn maintenance <b>bold</b>';
            document.querySelector('#silence-duration').value = '2h';
            document.querySelector('#silence-submit').click();
            """
        )
        browser.wait_for("document.querySelectorAll('#silences tbody tr.silence').length === 1")
        row = browser.evaluate(
            "(() => { const r = document.querySelector('#silences tbody tr.silence');"
            " return {m: r.querySelector('.matchers').textContent, s: r.querySelector('.state').textContent,"
            " c: r.querySelector('.comment').textContent, id: r.dataset.id}; })()"
        )
        assert row["m"] == 'market="BR"' and row["s"] == "active" and row["c"] == "cdn maintenance <b>bold</b>"
        assert [s.id for s in service.list_silences()] == [row["id"]]
        browser.wait_for("document.querySelector('#alerts tbody tr td:nth-child(6)').textContent === 'yes'")

        browser.evaluate("document.querySelector('#silences button.expire').click()")
        browser.wait_for("document.querySelector('#silences tbody tr.silence .state').textContent === 'expired'")


def test_a_page_on_another_origin_cannot_post_events_or_silences(browser: Browser, tmp_path: Path) -> None:
    """The cross-site attacks of issue 14 from a real browser: a page the operator opens on another origin
    sends events as text/plain and as a form (no CORS preflight), JSON with a preflight, and a silence."""
    from fastapi import FastAPI
    from fastapi.responses import HTMLResponse

    service = LiveService(clock=lambda: BASE_MS / 1000 + 600, db=tmp_path / "tw.db")
    evil = FastAPI()

    @evil.get("/")
    def page() -> HTMLResponse:
        return HTMLResponse("<html><body>cat pictures</body></html>")

    with uvicorn_thread(create_app(service)) as base, uvicorn_thread(evil) as evil_base:
        browser.call("Page.enable")
        browser.call("Page.navigate", url=evil_base.replace("127.0.0.1", "localhost") + "/")
        browser.wait_for("document.body && document.body.textContent === 'cat pictures'")
        event = json.dumps([{"event_id": "x1"}])
        outcome = browser.evaluate(
            f"""
            (async () => {{
              const out = [];
              const send = async (opts, path) => {{
                try {{ const r = await fetch({json.dumps(base)} + path, opts); out.push(r.type + ':' + r.status); }}
                catch (e) {{ out.push('blocked'); }}
              }};
              await send({{method: 'POST', mode: 'no-cors', body: {json.dumps(event)},
                          headers: {{'Content-Type': 'text/plain'}}}}, '/api/v1/events');
              await send({{method: 'POST', mode: 'no-cors', body: new Blob([{json.dumps(event)}])}}, '/api/v1/events');
              await send({{method: 'POST', body: {json.dumps(event)}, headers: {{'Content-Type': 'application/json'}}}},
                         '/api/v1/events');
              await send({{method: 'POST', mode: 'no-cors', headers: {{'Content-Type': 'text/plain'}},
                          body: JSON.stringify({{matchers: ['alertname=~.+'], comment: 'x', duration: '30d'}})}},
                         '/api/v1/silences');
              const form = document.createElement('form');
              form.method = 'POST'; form.action = {json.dumps(base)} + '/api/v1/events';
              form.innerHTML = '<input name="event_id" value="x2">';
              document.body.appendChild(form);
              return out;
            }})()
            """
        )
        assert outcome[:2] == ["opaque:0", "opaque:0"] and outcome[2] == "blocked"  # sent, answer unreadable
        browser.evaluate("document.forms[0].submit()")  # a form post navigates: its answer is the page
        browser.wait_for("document.body && document.body.textContent.includes('refused')")
        assert service.status()["received"] == 0 and service.quarantined == 0  # ... and all refused
        assert service.list_silences() == []
