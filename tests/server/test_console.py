"""The web console in a real headless Chromium against a real service on loopback: hostile text shown as text,
silencing an alert after a preview, the alert history's filters, local or UTC times, series search and chart
axes, the key banner, cross-origin pages, and the API docs with no network but loopback."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import BASE_MS
from tests.server.servers import Browser, chromium_binary, uvicorn_thread
from tests.server.test_console_api import LOG, console_rules
from tunewatch.alert.rules import parse_rules
from tunewatch.server import LiveService, create_app
from tunewatch.server.settings import ServerSettings

pytestmark = pytest.mark.integration

#: event fields are hostile input: a CDN name (a label of the alerts on it) and a rule's summary with markup
HOSTILE_CDN = '<img src=x onerror="window.pwned=1">'
HOSTILE_CDN_2 = '"><svg onload=window.pwned=2>'
RULES = console_rules("global, cdn", summary='<img src=x onerror="window.pwned=3"> plays at {{ $value }}')
CDNS = (HOSTILE_CDN, HOSTILE_CDN_2, "edge-2")
NO_MARKUP_RAN = """(() => !window.pwned && document.querySelectorAll('img, iframe, object, embed').length === 0
  && ![...document.querySelectorAll('*')].some((e) => [...e.attributes].some((a) => a.name.startsWith('on'))))()"""


class RecordingBrowser(Browser):
    """A :class:`Browser` that keeps the DevTools events it reads (e.g. ``Network.requestWillBeSent``)."""

    def __init__(self, binary: str) -> None:
        self.events: list[dict[str, Any]] = []
        super().__init__(binary)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        msg_id = next(self._ids)
        self._ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self._ws.recv(timeout=30))
            if "method" in reply:
                self.events.append(reply)
            elif reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"CDP {method}: {reply['error']}")
                return dict(reply.get("result", {}))


@pytest.fixture
def browser() -> Iterator[RecordingBrowser]:
    binary = chromium_binary()
    if binary is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium)")
    b = RecordingBrowser(binary)
    try:
        b.call("Page.enable")
        b.call("Emulation.setTimezoneOverride", timezoneId="America/Sao_Paulo")  # UTC-03:00, no summer time
        yield b
    finally:
        b.close()


@contextlib.contextmanager
def console(
    tmp_path: Path, play: Callable[..., dict[str, Any]], settings: ServerSettings | None = None
) -> Iterator[tuple[LiveService, str]]:
    """A service (clock: 10 min after BASE_MS) whose log holds :data:`LOG` and the alerts of 5 minutes of plays
    on three CDNs, two of them named with markup."""
    service = LiveService(
        parse_rules(RULES), clock=lambda: BASE_MS / 1000 + 600, db=tmp_path / "tw.db", settings=settings
    )
    for i, a in enumerate(LOG):
        service.alert_log.record([a], BASE_MS + i * 60_000)
    keys = service.keys.create("console", {"admin"}, now_ms=0)[0] if settings and settings.auth else None
    with uvicorn_thread(create_app(service)) as base:
        events = [play(i, BASE_MS + i * 1000, cdn=CDNS[i % 3], skipped=i % 5 == 0) for i in range(300)]
        headers = {"content-type": "application/json", **({"X-API-Key": keys} if keys else {})}
        posted = httpx.post(base + "/api/v1/events", content=json.dumps(events), headers=headers, timeout=120)
        assert posted.json()["accepted"] == 300
        yield service, base


def _open(browser: Browser, url: str) -> None:
    browser.call("Page.navigate", url=url)
    browser.wait_for(
        "document.readyState === 'complete' && document.querySelector('#alerts tbody tr[data-fingerprint]') !== null"
    )


def _type(browser: Browser, selector: str, value: str, event: str = "input") -> None:
    """Set a field as a person would and fire its ``input`` (or ``change``) event."""
    browser.evaluate(
        f"(() => {{ const e = document.querySelector({json.dumps(selector)}); e.value = {json.dumps(value)};"
        f" e.dispatchEvent(new Event({json.dumps(event)}, {{bubbles: true}})); }})()"
    )


def _texts(browser: Browser, selector: str) -> list[str]:
    return list(browser.evaluate(f"[...document.querySelectorAll({json.dumps(selector)})].map((e) => e.textContent)"))


def _alert_row(cdn: str) -> str:
    """JS for the active-alert row on ``cdn``."""
    chip = json.dumps(f"cdn={cdn}")
    return f"[...document.querySelectorAll('#alerts tbody tr')].find((r) => [...r.querySelectorAll('.labels span')].some((s) => s.textContent === {chip}))"  # noqa: E501


def test_hostile_labels_and_texts_are_shown_as_text_everywhere(
    browser: RecordingBrowser, play: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    with console(tmp_path, play) as (_, base):
        _open(browser, base + "/")
        chips = _texts(browser, "#alerts .labels span")
        assert f"cdn={HOSTILE_CDN}" in chips and f"cdn={HOSTILE_CDN_2}" in chips  # shown as text ...
        summary = browser.evaluate(f"{_alert_row(HOSTILE_CDN)}.querySelector('.summary').textContent")
        assert summary.startswith('<img src=x onerror="window.pwned=3"> plays at')
        # ... in every view that shows them: the silence form and its preview, history, series list and chart
        browser.evaluate(f"{_alert_row(HOSTILE_CDN_2)}.querySelector('button.silence-this').click()")
        browser.wait_for("document.querySelector('#silence-preview').dataset.matched === '1'")
        assert HOSTILE_CDN_2 in browser.evaluate("document.querySelector('#silence-preview li').textContent")
        _type(browser, "#history-q", "svg onload")
        browser.wait_for("document.querySelectorAll('#history tbody tr.change').length === 1")
        _type(browser, "#series-q", "svg")
        browser.wait_for("document.querySelectorAll('#series-results button').length === 1")
        browser.evaluate("document.querySelector('#series-results button').click()")
        browser.wait_for(f"document.querySelector('#chart-title').textContent.includes({json.dumps(HOSTILE_CDN_2)})")
        assert browser.evaluate(NO_MARKUP_RAN)  # ... and inert


def test_silence_this_alert_previews_what_it_mutes_then_creates_it(
    browser: RecordingBrowser, play: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    with console(tmp_path, play) as (service, base):
        _open(browser, base + "/")
        row = _alert_row("edge-2")
        fingerprint = browser.evaluate(f"{row}.dataset.fingerprint")
        browser.evaluate(f"{row}.querySelector('button.silence-this').click()")
        browser.wait_for("document.querySelector('#silence-preview').dataset.matched === '1'")
        assert browser.evaluate("document.querySelector('#silence-preview li').dataset.fingerprint") == fingerprint
        assert 'cdn="edge-2"' in browser.evaluate("document.querySelector('#silence-matchers').value")
        form = browser.evaluate("document.querySelector('#silence-matchers').value")

        # the preview follows the matchers as they are typed: wider, then unusable
        plays_seen = sum(a.name == "PlaysSeen" for a in service.active_alerts())
        assert plays_seen == 4  # global and three CDNs
        _type(browser, "#silence-matchers", "alertname=PlaysSeen")
        browser.wait_for(f"document.querySelector('#silence-preview').dataset.matched === '{plays_seen}'")
        _type(browser, "#silence-matchers", 'cdn=~"("')
        browser.wait_for("document.querySelector('#silence-preview').classList.contains('invalid')")
        assert browser.evaluate("document.querySelector('#silence-preview .preview-head').textContent").startswith(
            "These matchers cannot make a silence: 400"
        )

        _type(browser, "#silence-matchers", form)
        browser.wait_for("document.querySelector('#silence-preview').dataset.matched === '1'")
        _type(browser, "#silence-comment", "cdn maintenance <b>bold</b>")
        _type(browser, "#silence-duration", "2h")
        browser.evaluate("document.querySelector('#silence-submit').click()")
        browser.wait_for("document.querySelectorAll('#silences tbody tr.silence').length === 1")
        created = browser.evaluate(
            "(() => { const r = document.querySelector('#silences tbody tr.silence');"
            " return {m: r.querySelector('.matchers').textContent, s: r.querySelector('.state').textContent,"
            " c: r.querySelector('.comment').textContent, id: r.dataset.id}; })()"
        )
        [silence] = service.list_silences()
        assert (
            created["id"] == silence.id and created["s"] == "active" and created["c"] == "cdn maintenance <b>bold</b>"
        )
        assert created["m"] == ", ".join(str(m) for m in silence.matchers) and 'cdn="edge-2"' in created["m"]
        assert silence.ends_at - silence.starts_at == 2 * 3_600_000
        browser.wait_for(f"{row}.querySelector('.silenced').textContent === 'yes'")
        silenced = browser.evaluate(
            "[...document.querySelectorAll('#alerts tbody tr')].filter((r) => r.querySelector('.silenced')"
            ".textContent === 'yes').map((r) => r.dataset.fingerprint)"
        )
        assert silenced == [fingerprint]  # that alert only

        browser.evaluate("document.querySelector('#silences button.expire').click()")
        browser.wait_for("document.querySelector('#silences tbody tr.silence .state').textContent === 'expired'")


def test_alert_history_filters_search_and_incident_slices(
    browser: RecordingBrowser, play: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    rows = "document.querySelectorAll('#history tbody tr.change')"
    with console(tmp_path, play) as (service, base):
        _open(browser, base + "/")
        total = len(service.alert_log.history(100))
        assert total == len(LOG) + 5  # and PlaysSeen on global and 3 CDNs, SkipsSeen
        browser.wait_for(f"{rows}.length === {total}")
        assert browser.evaluate("document.querySelector('#history-count').textContent") == f"({total})"
        # Silence… where the change's alert fires now (not on SkipSpike's firing change: it has resolved since)
        buttons = "[...document.querySelectorAll('#history tbody tr.change')].filter((r) => r.querySelector('button.silence-this'))"  # noqa: E501
        assert browser.evaluate(f"{buttons}.length") == len(service.active_alerts()) == total - 2
        assert "SkipSpike" not in browser.evaluate(f"{buttons}.map((r) => r.textContent).join()")
        options = browser.evaluate("[...document.querySelector('#history-severity').options].map((o) => o.value)")
        assert options == ["", "critical", "warning"]

        _type(browser, "#history-state", "resolved", "change")
        browser.wait_for(f"{rows}.length === 1 && {rows}[0].dataset.status === 'resolved'")
        _type(browser, "#history-state", "", "change")
        _type(browser, "#history-severity", "critical", "change")
        browser.wait_for(f"{rows}.length === 2")
        assert _texts(browser, "#history tbody tr.change .alertname") == ["PlaysDrop", "StartupSlow"]
        _type(browser, "#history-severity", "", "change")

        # a slice the incident also affected finds it, and its row lists the affected slices
        _type(browser, "#history-slice", "market=BR")
        browser.wait_for(f"{rows}.length === 1")
        assert _texts(browser, "#history tbody tr.change .affected") == ["StartupSlow on market=BR (82% explained)"]
        assert _texts(browser, "#history tbody tr.change .incident-head") == ["incident: 2 slices — also affected "]
        _type(browser, "#history-slice", "")

        _type(browser, "#history-q", "EDGE-2 seen")  # every word, any case (PlaysDrop is on edge-2 too)
        browser.wait_for(f"{rows}.length === 1 && {rows}[0].textContent.includes('cdn=edge-2')")
        assert _texts(browser, "#history tbody tr.change .alertname") == ["PlaysSeen"]
        _type(browser, "#history-q", "")

        # a time range typed in UTC: from 00:03 UTC, the changes at 4 and 6 minutes past midnight
        _type(browser, "#tz-mode", "utc", "change")
        _type(browser, "#history-range", "custom", "change")
        _type(browser, "#history-from", "2026-01-05T00:03:00")
        browser.wait_for(f"{rows}.length === 2")
        assert _texts(browser, "#history tbody tr.change .alertname") == ["PlaysDrop", "SkipSpike"]
        _type(browser, "#history-to", "2026-01-05T00:05:00")
        browser.wait_for(f"{rows}.length === 1")
        _type(browser, "#history-range", "3600000", "change")  # the last hour of the service clock: everything
        browser.wait_for(f"{rows}.length === {total}")
        # a bad slice is reported beside the filters, naming the parameter
        _type(browser, "#history-slice", "colour=red")
        browser.wait_for("!document.querySelector('#history-message').hidden")
        assert "slice: expected field=value" in browser.evaluate(
            "document.querySelector('#history-message').textContent"
        )
        assert browser.evaluate("document.querySelector('#error').hidden")


def test_times_local_or_utc_with_relative_ages(
    browser: RecordingBrowser, play: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    incident = "[...document.querySelectorAll('#alerts tbody tr')].find((r) => r.querySelector('.alertname').textContent === 'StartupSlow')"  # noqa: E501
    with console(tmp_path, play) as (_, base):
        _open(browser, base + "/")
        # started 2026-01-05T00:02Z; the service clock says 00:10Z
        browser.wait_for(f"{incident}.querySelector('.age').textContent === '8 min ago'")
        assert browser.evaluate(f"{incident}.querySelector('time').textContent") == "2026-01-04 21:02:00 UTC-03:00"
        _type(browser, "#tz-mode", "utc", "change")
        assert browser.evaluate(f"{incident}.querySelector('time').textContent") == "2026-01-05 00:02:00 UTC"
        assert browser.evaluate(f"{incident}.querySelector('.age').textContent") == "8 min ago"
        _open(browser, base + "/")  # the choice is remembered
        assert browser.evaluate("document.querySelector('#tz-mode').value") == "utc"
        assert browser.evaluate(f"{incident}.querySelector('time').textContent") == "2026-01-05 00:02:00 UTC"
        browser.wait_for("document.querySelector('#chart svg .x-title') !== null")
        assert browser.evaluate("document.querySelector('#chart svg .x-title').textContent") == "time (UTC)"


def test_series_search_and_a_chart_with_unit_axis_and_grid(
    browser: RecordingBrowser, play: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    picks = "document.querySelectorAll('#series-results button')"
    with console(tmp_path, play) as (_, base):
        _open(browser, base + "/")
        browser.wait_for(f"{picks}.length === 5")  # plays: global and 3 CDNs; skip_rate: global
        assert _texts(browser, "#series-results button")[:2] == ["plays (global)", f"plays {{cdn={HOSTILE_CDN_2}}}"]
        metrics = browser.evaluate("[...document.querySelector('#series-metric').options].map((o) => o.value)")
        assert metrics == ["", "plays", "skip_rate"]

        _type(browser, "#series-q", "skip")
        browser.wait_for(f"{picks}.length === 1")
        browser.evaluate(f"{picks}[0].click()")
        browser.wait_for("document.querySelector('#chart-title').textContent.startsWith('skip_rate on global')")
        browser.wait_for("document.querySelector('#chart svg polyline.value') !== null")
        ticks = _texts(browser, "#chart svg .y-axis text.tick")
        assert len(ticks) >= 3 and all(t.endswith("%") for t in ticks), ticks
        values = [float(t.rstrip("%")) for t in ticks]
        assert values == sorted(values) and 0 <= values[0] < values[-1] <= 100  # a share, in percent
        assert browser.evaluate("document.querySelectorAll('#chart svg .y-axis line.grid').length") == len(ticks)
        assert browser.evaluate("document.querySelector('#chart svg .y-title').textContent") == (
            "skipped plays / plays (%)"
        )
        assert browser.evaluate("document.querySelector('#chart svg .x-title').textContent") == "time (UTC-03:00)"
        assert browser.evaluate("document.querySelectorAll('#chart svg .x-axis text.tick').length") >= 2

        _type(browser, "#series-q", "")
        _type(browser, "#series-metric", "plays", "change")
        _type(browser, "#series-slice", "cdn=edge-2")
        browser.wait_for(f"{picks}.length === 1 && {picks}[0].textContent === 'plays {{cdn=edge-2}}'")
        browser.evaluate(f"{picks}[0].click()")
        browser.wait_for("document.querySelector('#chart-title').textContent.startsWith('plays on cdn=edge-2')")
        browser.wait_for("document.querySelector('#chart svg .y-axis text.tick') !== null")
        assert all(t.endswith("/min") for t in _texts(browser, "#chart svg .y-axis text.tick"))


def test_a_notification_link_opens_its_series(
    browser: RecordingBrowser, play: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    """The ``generatorURL`` of a notification (``/?metric=…&cdn=…``) opens the console on that series' chart."""
    with console(tmp_path, play) as (_, base):
        _open(browser, base + "/?metric=plays&cdn=edge-2")
        browser.wait_for("document.querySelector('#chart-title').textContent.startsWith('plays on cdn=edge-2')")
        assert browser.evaluate("document.querySelector('#series-slice').value") == "cdn=edge-2"
        picks = "document.querySelectorAll('#series-results button')"
        browser.wait_for(f"{picks}.length === 1 && {picks}[0].classList.contains('selected')")


def test_the_key_banner_goes_once_a_valid_key_is_given(
    browser: RecordingBrowser, play: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    settings = ServerSettings(auth=True, db=tmp_path / "tw.db")
    with console(tmp_path, play, settings) as (service, base):
        key, _ = service.keys.create("reader", {"read"}, now_ms=0)
        browser.call("Page.navigate", url=base + "/")
        browser.wait_for("document.querySelector('#error') !== null && !document.querySelector('#error').hidden")
        assert browser.evaluate("document.querySelector('#error').textContent").startswith("401")
        _type(browser, "#api-key", key, "change")
        rows = "document.querySelectorAll('#alerts tr[data-fingerprint]').length"
        browser.wait_for(f"document.querySelector('#error').hidden && {rows} > 0")
        assert browser.evaluate("document.querySelector('#history-message').hidden")


def test_api_docs_load_in_chromium_with_no_request_beyond_loopback(browser: RecordingBrowser, tmp_path: Path) -> None:
    service = LiveService(clock=lambda: BASE_MS / 1000 + 600, db=tmp_path / "tw.db")
    with uvicorn_thread(create_app(service)) as base:
        browser.call("Network.enable")
        browser.call("Page.navigate", url=base + "/docs")
        browser.wait_for("location.pathname === '/docs' && document.querySelectorAll('.opblock').length >= 10", 30)
        assert browser.evaluate("document.body.innerText.includes('/api/v1/console/silence-preview')")
        browser.call("Page.navigate", url=base + "/redoc")
        redoc = "location.pathname === '/redoc' && document.querySelector('.redoc-wrap') !== null"
        browser.wait_for(f"{redoc} && document.body.innerText.includes('Silence Preview')", timeout_s=30)
        browser.evaluate("1")  # drain the events of the last loads
        sent = {
            e["params"]["requestId"]: e["params"]["request"]["url"]
            for e in browser.events
            if e["method"] == "Network.requestWillBeSent"
        }
        urls = list(sent.values())
        assert any(u.endswith("/docs/assets/swagger-ui-bundle.js") for u in urls)
        assert any(u.endswith("/docs/assets/redoc.standalone.js") for u in urls)
        assert any(u.endswith("/openapi.json") for u in urls)
        outside = {i for i, u in sent.items() if not (u.startswith(base + "/") or u.startswith(("data:", "blob:")))}
        failed = {
            e["params"]["requestId"]: e["params"] for e in browser.events if e["method"] == "Network.loadingFailed"
        }
        # ReDoc's footer asks for its logo on a CDN: the pages' content security policy stops it in the browser
        assert all(failed.get(i, {}).get("blockedReason") == "csp" for i in outside), [sent[i] for i in outside]
        assert set(failed) == outside  # everything else loaded


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
