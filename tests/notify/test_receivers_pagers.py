"""PagerDuty, Opsgenie, Microsoft Teams, Discord and Telegram receivers against local HTTP servers that check
each service's documented request format; retries, the durable outbox and ``http_config`` (auth, TLS, proxy)."""

from __future__ import annotations

import hashlib
import re
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.notify.peers import HttpReceiver, Received, self_signed_cert, server_tls_context
from tunewatch.alert.model import Alert
from tunewatch.clock import ManualClock
from tunewatch.notify import NotificationPipeline, NotifyConfig

pytestmark = pytest.mark.integration

T0 = 1_767_571_200_000
HOSTILE = "<b>bold</b> & <a href='x'>"


def alerts() -> list[Alert]:
    ann = {"summary": f"Playback failures up in BR {HOSTILE}", "expected": "1.00%", "actual": "12.50%",
           "runbook_url": "https://runbooks.example.com/playback"}  # fmt: skip
    return [
        Alert({"alertname": "PlaybackFailuresUp", "severity": "critical", "metric": "failure_rate", "market": "BR",
               "cdn": "edge-2"}, ann, "firing", T0),
        Alert({"alertname": "PlaybackFailuresUp", "severity": "critical", "metric": "failure_rate", "market": "BR",
               "cdn": "edge-3"}, ann, "firing", T0),
    ]  # fmt: skip


def resolved(a: Alert) -> Alert:
    return Alert(dict(a.labels), dict(a.annotations), "resolved", a.starts_at, T0 + 120_000)


def cycle(cfg: NotifyConfig, db: str | Path = ":memory:") -> tuple[dict[str, int], dict[str, int]]:
    """Fire both alerts, then resolve them; return what each flush sent."""
    firing = alerts()
    with NotificationPipeline(cfg, db, ManualClock(T0)) as p:
        p.process(firing, T0)
        first = p.flush(T0).sent
        p.process([resolved(a) for a in firing], T0 + 120_000)
        second = p.flush(T0 + 10 * 60_000).sent
    return first, second


def config(receiver: str, settings: str = "") -> NotifyConfig:
    return NotifyConfig.from_yaml(f"""
route: {{receiver: r, group_by: [alertname, market], group_wait: 0s, group_interval: 1m}}
receivers: [{{name: r, {receiver}}}]
""", settings=settings or "delivery: {attempts: 2, retry_initial: 1ms, retry_max: 2ms}")  # fmt: skip


GROUP_KEY = '{}:{alertname="PlaybackFailuresUp", market="BR"}'


# ---------------------------------------------------------------------------------- documented formats
def check_pagerduty_v2(body: dict[str, Any]) -> None:
    """PagerDuty Events API v2 ``POST /v2/enqueue`` (developer.pagerduty.com: Send an Alert Event)."""
    assert set(body) <= {"routing_key", "event_action", "dedup_key", "payload", "images", "links", "client",
                         "client_url"}  # fmt: skip
    assert isinstance(body["routing_key"], str) and len(body["routing_key"]) == 32
    assert body["event_action"] in ("trigger", "acknowledge", "resolve")
    assert 0 < len(body["dedup_key"]) <= 255
    p = body["payload"]
    assert set(p) <= {"summary", "source", "severity", "timestamp", "component", "group", "class", "custom_details"}
    assert 0 < len(p["summary"]) <= 1024 and p["source"] and p["severity"] in ("critical", "error", "warning", "info")
    for image in body.get("images", []):
        assert "src" in image
    for link in body.get("links", []):
        assert "href" in link


def check_opsgenie_create(req: Received) -> None:
    """Opsgenie Alert API ``POST /v2/alerts`` (docs.opsgenie.com: Create Alert)."""
    body = req.body
    assert req.path == "/v2/alerts"
    assert set(body) <= {"message", "alias", "description", "responders", "visibleTo", "actions", "tags", "details",
                         "entity", "source", "priority", "user", "note"}  # fmt: skip
    assert 0 < len(body["message"]) <= 130 and len(body["alias"]) <= 512 and len(body["description"]) <= 15_000
    assert all(r["type"] in ("team", "user", "escalation", "schedule") and ({"id", "name", "username"} & set(r))
               for r in body.get("responders", []))  # fmt: skip
    assert len(body.get("tags", [])) <= 20 and all(len(t) <= 50 for t in body.get("tags", []))
    assert all(isinstance(v, str) for v in body.get("details", {}).values())
    assert body.get("priority", "P3") in ("P1", "P2", "P3", "P4", "P5")
    assert len(body.get("source", "")) <= 100


def check_teams_card(body: dict[str, Any]) -> None:
    """Office 365 connector ``MessageCard`` (learn.microsoft.com: Legacy actionable message card reference)."""
    assert body["@type"] == "MessageCard" and body["@context"] in ("http://schema.org/extensions",
                                                                  "https://schema.org/extensions")  # fmt: skip
    assert body.get("summary") or body.get("text")
    assert re.fullmatch(r"[0-9A-Fa-f]{6}", body["themeColor"])


def check_discord(body: dict[str, Any]) -> None:
    """Discord ``Execute Webhook`` (discord.com/developers/docs/resources/webhook)."""
    assert body.get("content") or body.get("embeds")
    assert len(body["embeds"]) <= 10
    for e in body["embeds"]:
        assert len(e.get("title", "")) <= 256 and len(e.get("description", "")) <= 4096
        assert 0 <= e.get("color", 0) <= 0xFFFFFF


def check_telegram(req: Received, token: str) -> None:
    """Telegram Bot API ``sendMessage`` (core.telegram.org/bots/api#sendmessage)."""
    assert req.path == f"/bot{token}/sendMessage"
    body = req.body
    assert isinstance(body["chat_id"], int | str)
    assert 1 <= len(body["text"]) <= 4096
    assert body.get("parse_mode", "HTML") in ("HTML", "Markdown", "MarkdownV2")
    assert isinstance(body.get("disable_notification", False), bool)


# ---------------------------------------------------------------------------------- tests
def test_pagerduty_events_v2(http_receiver: HttpReceiver) -> None:
    http_receiver.reply = (202, b'{"status":"success","message":"Event processed","dedup_key":"x"}')
    http_receiver.script = deque(["500"])  # the first try fails: retried within the round
    cfg = config(f"""pagerduty_configs: [{{routing_key: 0123456789abcdef0123456789abcdef,
        url: "{http_receiver.url}/v2/enqueue", component: '{{{{ .CommonLabels.cdn }}}}',
        group: '{{{{ .CommonLabels.market }}}}', class: '{{{{ .CommonLabels.metric }}}}',
        links: [{{href: "https://runbooks.example.com", text: Runbook}}]}}]""")
    assert cycle(cfg) == ({"r": 1}, {"r": 1})
    assert http_receiver.requests == 3
    trigger, resolve = (r.body for r in http_receiver.received)
    for body in (trigger, resolve):
        check_pagerduty_v2(body)
    assert trigger["event_action"] == "trigger" and resolve["event_action"] == "resolve"
    assert trigger["dedup_key"] == resolve["dedup_key"] == hashlib.sha256(GROUP_KEY.encode()).hexdigest()
    p = trigger["payload"]
    assert p["summary"] == "[FIRING:2] PlaybackFailuresUp BR (failure_rate critical)"
    assert p["severity"] == "error" and p["source"] == "tunewatch" and p["class"] == "failure_rate"
    assert "component" not in p  # the two alerts differ in cdn: no common value, so the field is left out
    assert p["custom_details"]["num_firing"] == "2" and "cdn = edge-2" in p["custom_details"]["firing"]
    assert trigger["client"] == "tunewatch" and trigger["client_url"] == "http://localhost:8080/"


def test_pagerduty_v1_service_key(http_receiver: HttpReceiver) -> None:
    cfg = config(f'pagerduty_configs: [{{service_key: svc, url: "{http_receiver.url}/create_event.json"}}]')
    assert cycle(cfg)[0] == {"r": 1}
    body = http_receiver.received[0].body
    assert set(body) == {"service_key", "event_type", "incident_key", "description", "client", "client_url",
                         "details"}  # fmt: skip
    assert body["event_type"] == "trigger" and body["service_key"] == "svc"


def test_opsgenie_create_and_close(http_receiver: HttpReceiver) -> None:
    http_receiver.reply = (202, b'{"result":"Request will be processed","took":0.1,"requestId":"x"}')
    cfg = config(f"""opsgenie_configs: [{{api_key: og-key, api_url: "{http_receiver.url}/",
        priority: '{{{{ if eq .CommonLabels.severity "critical" }}}}P1{{{{ else }}}}P3{{{{ end }}}}',
        tags: 'tunewatch, {{{{ .CommonLabels.market }}}}', responders: [{{name: music, type: team}}],
        details: {{metric: '{{{{ .CommonLabels.metric }}}}'}}}}]""")
    assert cycle(cfg) == ({"r": 1}, {"r": 1})
    create, close = http_receiver.received
    check_opsgenie_create(create)
    assert create.headers["Authorization"] == "GenieKey og-key"
    alias = hashlib.sha256(GROUP_KEY.encode()).hexdigest()
    assert create.body["alias"] == alias and create.body["priority"] == "P1"
    assert create.body["tags"] == ["tunewatch", "BR"]
    assert create.body["responders"] == [{"name": "music", "type": "team"}]
    assert create.body["details"]["metric"] == "failure_rate" and create.body["details"]["market"] == "BR"
    assert create.body["message"] == "[FIRING:2] PlaybackFailuresUp BR (failure_rate critical)"
    assert "Alerts Firing:" in create.body["description"]
    assert close.path == f"/v2/alerts/{alias}/close?identifierType=alias" and close.body == {
        "source": "http://localhost:8080/"
    }


def test_msteams_message_card(http_receiver: HttpReceiver) -> None:
    http_receiver.reply = (200, b"1")
    cfg = config(f"""msteams_configs: [{{webhook_url: "{http_receiver.url}/webhookb2/x",
        text: '{{{{ range .Alerts }}}}{{{{ .Annotations.summary }}}}; {{{{ end }}}}'}}]""")
    assert cycle(cfg) == ({"r": 1}, {"r": 1})
    firing, done = (r.body for r in http_receiver.received)
    for body in (firing, done):
        check_teams_card(body)
    assert firing["title"] == firing["summary"] == "[FIRING:2] PlaybackFailuresUp BR (failure_rate critical)"
    assert firing["text"].count("Playback failures up in BR") == 2 and firing["themeColor"] == "8C1A1A"
    assert done["themeColor"] == "2DC72D" and done["title"].startswith("[RESOLVED]")


def test_discord_embed(http_receiver: HttpReceiver) -> None:
    http_receiver.reply = (204, b"")
    cfg = config(f'discord_configs: [{{webhook_url: "{http_receiver.url}/api/webhooks/1/x", send_resolved: false}}]')
    assert cycle(cfg) == ({"r": 1}, {})  # send_resolved: false — the resolved notification is skipped
    (req,) = http_receiver.received
    check_discord(req.body)
    (embed,) = req.body["embeds"]
    assert embed["title"] == "[FIRING:2] PlaybackFailuresUp BR (failure_rate critical)"
    assert embed["color"] == 0x992D22 and "Alerts Firing:" in embed["description"]


def test_telegram_html_escaped(http_receiver: HttpReceiver) -> None:
    http_receiver.reply = (200, b'{"ok":true,"result":{"message_id":1}}')
    cfg = config(f"""telegram_configs: [{{api_url: "{http_receiver.url}", bot_token: "123:ABC", chat_id: -100123,
        message: '{{{{ range .Alerts.Firing }}}}<b>{{{{ .Labels.alertname }}}}</b> {{{{ .Annotations.summary }}}}
        {{{{ end }}}}'}}]""")
    assert cycle(cfg) == ({"r": 1}, {"r": 1})
    first = http_receiver.received[0]
    check_telegram(first, "123:ABC")
    text = first.body["text"]
    assert text.startswith("<b>PlaybackFailuresUp</b> Playback failures up in BR")
    assert "&lt;b&gt;bold&lt;/b&gt; &amp;" in text and "<a href" not in text  # alert text cannot inject markup
    assert first.body["chat_id"] == -100123 and first.body["parse_mode"] == "HTML"


def test_telegram_not_ok_is_a_failure(http_receiver: HttpReceiver) -> None:
    http_receiver.reply = (200, b'{"ok":false,"description":"Bad Request: chat not found"}')
    cfg = config(f'telegram_configs: [{{api_url: "{http_receiver.url}", bot_token: "1:A", chat_id: 1}}]')
    with NotificationPipeline(cfg, ":memory:", ManualClock(T0)) as p:
        p.process(alerts(), T0)
        report = p.flush(T0)
        assert report.failed == {"r": 1}
        assert "1:A" not in p.outbox.history()[0].last_error  # the token is redacted


def test_failed_pages_wait_in_the_outbox_across_a_restart(http_receiver: HttpReceiver, tmp_path: Path) -> None:
    http_receiver.script = deque(["500"] * 4)
    http_receiver.reply = (202, b"{}")
    cfg = config(
        f'pagerduty_configs: [{{routing_key: 0123456789abcdef0123456789abcdef, url: "{http_receiver.url}"}}]',
        "delivery: {attempts: 2, retry_initial: 1ms, retry_max: 2ms, backoff_initial: 1s, backoff_max: 1s}",
    )
    db = tmp_path / "notify.db"
    with NotificationPipeline(cfg, db, ManualClock(T0)) as p:
        p.process(alerts(), T0)
        report = p.flush(T0)
        assert report.sent == {} and report.retrying == 1 and report.pending == 1
    with NotificationPipeline(cfg, db, ManualClock(T0 + 5_000)) as p:  # a restart: the page is still queued
        assert p.flush(T0 + 5_000).sent == {}  # 2 more failures (scripted), then ...
        assert p.flush(T0 + 10_000).sent == {"r": 1}
    assert http_receiver.requests == 5 and len(http_receiver.received) == 1
    check_pagerduty_v2(http_receiver.received[0].body)


@pytest.fixture
def https_receiver(tmp_path: Path) -> Iterator[tuple[HttpReceiver, Path]]:
    cert, key = self_signed_cert(tmp_path)
    receiver = HttpReceiver(tls=server_tls_context(cert, key)).start()
    yield receiver, cert
    receiver.stop()


def test_http_config_tls_and_auth(https_receiver: tuple[HttpReceiver, Path], tmp_path: Path) -> None:
    server, ca = https_receiver
    server.reply = (204, b"")
    cfg = config(f"""discord_configs: [{{webhook_url: "{server.url}/hook", http_config: {{
        tls_config: {{ca_file: "{ca}"}}, authorization: {{type: Bearer, credentials: s3cret}}}}}}]""")
    assert cycle(cfg)[0] == {"r": 1}
    assert server.received[0].headers["Authorization"] == "Bearer s3cret"
    # without the CA the certificate is refused, and that is not retried
    untrusted = config(f'discord_configs: [{{webhook_url: "{server.url}/hook"}}]')
    with NotificationPipeline(untrusted, ":memory:", ManualClock(T0)) as p:
        p.process(alerts(), T0)
        assert p.flush(T0).failed == {"r": 1}
        assert "CERTIFICATE_VERIFY_FAILED" in p.outbox.history()[0].last_error
    basic = config(f"""msteams_configs: [{{webhook_url: "{server.url}/hook", http_config: {{
        basic_auth: {{username: u, password: p}}, tls_config: {{insecure_skip_verify: true}}}}}}]""")
    server.reply = (200, b"1")
    assert cycle(basic)[0] == {"r": 1}
    assert server.received[-1].headers["Authorization"] == "Basic dTpw"


def test_http_config_proxy_url(http_receiver: HttpReceiver) -> None:
    http_receiver.reply = (204, b"")
    cfg = config(f"""discord_configs: [{{webhook_url: "http://discord.invalid/api/webhooks/1/x",
        http_config: {{proxy_url: "{http_receiver.url}"}}}}]""")
    assert cycle(cfg) == ({"r": 1}, {"r": 1})
    req = http_receiver.received[0]  # the proxy got the request for the real host, in absolute form
    assert req.path == "http://discord.invalid/api/webhooks/1/x"
    check_discord(req.body)
