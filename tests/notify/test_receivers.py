"""Receivers against real peers on loopback: Slack-style webhook, generic webhook, SMTP (STARTTLS), Alertmanager."""

from __future__ import annotations

import email
import time
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.notify.peers import HttpReceiver, free_port, real_alertmanager, self_signed_cert, server_tls_context
from tunewatch.alert.model import Alert, format_time
from tunewatch.clock import ManualClock
from tunewatch.notify import NotificationPipeline, NotifyConfig

pytestmark = pytest.mark.integration

T0 = 1_767_571_200_000
HOSTILE = '<script>alert("x")</script> & <!channel> <https://evil.example|click>'

ANNOTATIONS = {
    "summary": f"Playback failures up in BR {HOSTILE}",
    "description": "failure_rate 12.5% vs 1.0% expected",
    "expected": "1.00%",
    "actual": "12.50%",
    "top_contributors": "cdn=edge-2 (+9.1%); platform=android (+2.0%)",
    "revenue_at_risk_per_hour": "1,234.56",
    "runbook_url": "https://runbooks.example.com/playback-failures?a=1&b=2",
}


def hostile_alert() -> Alert:
    return Alert({"alertname": "HighFailureRate", "market": "BR", "severity": "critical", "cdn": HOSTILE},
                 dict(ANNOTATIONS), "firing", T0)  # fmt: skip


def run_once(cfg: NotifyConfig, alerts: list[Alert]) -> dict[str, int]:
    with NotificationPipeline(cfg, ":memory:", ManualClock(T0)) as p:
        p.process(alerts, T0)
        return p.flush(T0).sent


def test_slack_block_kit_message_is_escaped(http_receiver: HttpReceiver, tmp_path: Path) -> None:
    secret = tmp_path / "slack_url"
    secret.write_text(f"{http_receiver.url}/services/T0/B0/XYZ\n")
    cfg = NotifyConfig.from_yaml(f"""
route: {{receiver: slack, group_wait: 0s, group_by: [alertname]}}
receivers: [{{name: slack, slack_configs: [{{api_url_file: "{secret}", channel: "#alerts"}}]}}]
""")
    assert run_once(cfg, [hostile_alert()]) == {"slack": 1}
    (req,) = http_receiver.received
    assert req.path == "/services/T0/B0/XYZ"
    body = req.body
    assert body["channel"] == "#alerts"
    kinds = [b["type"] for b in body["blocks"]]
    assert kinds == ["header", "section", "context"]
    assert body["blocks"][0]["text"]["text"] == "[FIRING:1] HighFailureRate"
    text = body["blocks"][1]["text"]["text"]
    for needle in ("*Expected:* 1.00%", "*Actual:* 12.50%", "*Top contributors:* cdn=edge-2 (+9.1%)",
                   "*Revenue at risk per hour:* 1,234.56", "Playback failures up in BR"):  # fmt: skip
        assert needle in text
    assert "<https://runbooks.example.com/playback-failures?a=1&amp;b=2|Runbook>" in text
    # hostile text cannot open a link, a mention or a tag
    assert "&lt;!channel&gt;" in text and "<!channel>" not in text
    assert "<https://evil" not in text and "<script>" not in text


def test_webhook_payload_is_alertmanager_v4(http_receiver: HttpReceiver) -> None:
    cfg = NotifyConfig.from_yaml(f"""
route: {{receiver: hook, group_wait: 0s, group_by: [alertname]}}
receivers: [{{name: hook, webhook_configs: [{{url: "{http_receiver.url}/hook", max_alerts: 1}}]}}]
external_url: https://tunewatch.example.com
""")
    b = Alert({"alertname": "HighFailureRate", "market": "AR", "severity": "critical"}, {"summary": "s"}, "firing", T0)
    assert run_once(cfg, [hostile_alert(), b]) == {"hook": 1}
    body = http_receiver.received[0].body
    assert set(body) == {"version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels",
                         "commonLabels", "commonAnnotations", "externalURL", "alerts"}  # fmt: skip
    assert body["version"] == "4" and body["truncatedAlerts"] == 1 and len(body["alerts"]) == 1
    assert body["groupKey"] == '{}:{alertname="HighFailureRate"}'
    assert body["groupLabels"] == {"alertname": "HighFailureRate"}
    assert body["commonLabels"] == {"alertname": "HighFailureRate", "severity": "critical"}
    assert body["externalURL"] == "https://tunewatch.example.com"
    alert = body["alerts"][0]
    assert alert["labels"]["cdn"] == HOSTILE  # JSON carries the raw value; escaping is the renderer's job
    assert alert["startsAt"] == "2026-01-05T00:00:00.000Z" and alert["endsAt"] == "0001-01-01T00:00:00Z"
    assert alert["fingerprint"] == hostile_alert().fingerprint


class _Sink:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), email.message_from_bytes(envelope.content)))
        return "250 OK"


def _auth(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"alerts" and auth_data.password == b"pa55"
    return AuthResult(success=ok)


@pytest.fixture
def smtp_server(tmp_path: Path) -> Iterator[tuple[int, Path, _Sink]]:
    cert, key = self_signed_cert(tmp_path)
    sink = _Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port, tls_context=server_tls_context(cert, key),
                            require_starttls=True, authenticator=_auth, auth_required=True)  # fmt: skip
    controller.start()
    yield port, cert, sink
    controller.stop()


def test_email_over_starttls_with_auth_html_escaped(smtp_server: tuple[int, Path, _Sink], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    port, cert, sink = smtp_server
    monkeypatch.setenv("TW_SMTP_PASSWORD", "pa55")
    cfg = NotifyConfig.from_yaml(f"""
global: {{smtp_smarthost: "127.0.0.1:{port}", smtp_from: tunewatch@example.com, smtp_auth_username: alerts,
          smtp_auth_password: "${{TW_SMTP_PASSWORD}}"}}
route: {{receiver: mail, group_wait: 0s, group_by: [alertname]}}
receivers: [{{name: mail, email_configs: [{{to: oncall@example.com, tls_config: {{ca_file: "{cert}"}},
              headers: {{X-Team: "music\\r\\nBcc: victim@example.com"}}}}]}}]
""")
    assert "pa55" not in repr(cfg)
    assert run_once(cfg, [hostile_alert()]) == {"mail": 1}
    ((mail_from, rcpts, msg),) = sink.messages
    assert mail_from == "tunewatch@example.com" and rcpts == ["oncall@example.com"]
    assert msg["Subject"] == "[FIRING:1] HighFailureRate"
    assert msg["Bcc"] is None and msg["X-Team"] == "music Bcc: victim@example.com"
    parts = {p.get_content_type(): p.get_payload(decode=True).decode() for p in msg.walk() if not p.is_multipart()}
    text, html = parts["text/plain"], parts["text/html"]
    for needle in ("Expected: 1.00%", "Actual: 12.50%", "Top contributors: cdn=edge-2", "Revenue at risk per hour",
                   "Runbook: https://runbooks.example.com/playback-failures?a=1&b=2"):  # fmt: skip
        assert needle in text
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'href="https://runbooks.example.com/playback-failures?a=1&amp;b=2"' in html
    assert "1,234.56" in html


def test_email_refuses_server_without_starttls(tmp_path: Path) -> None:
    sink = _Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        cfg = NotifyConfig.from_yaml(f"""
route: {{receiver: mail, group_wait: 0s}}
receivers: [{{name: mail, email_configs: [{{to: a@example.com, from: b@example.com, smarthost: "127.0.0.1:{port}"}}]}}]
""")
        with NotificationPipeline(cfg, ":memory:", ManualClock(T0)) as p:
            p.process([hostile_alert()], T0)
            report = p.flush(T0)
            assert report.failed == {"mail": 1}
            assert "STARTTLS" in p.outbox.history()[0].last_error
    finally:
        controller.stop()
    assert sink.messages == []


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    with real_alertmanager(tmp_path) as url:
        yield url


def test_forward_to_real_alertmanager(alertmanager: str) -> None:
    now = int(time.time() * 1000)
    cfg = NotifyConfig.from_yaml(f"""
route: {{receiver: am, group_wait: 0s, group_by: [alertname]}}
receivers: [{{name: am, alertmanager_configs: [{{url: "{alertmanager}"}}]}}]
""")
    firing = Alert({"alertname": "HighFailureRate", "market": "BR"}, dict(ANNOTATIONS), "firing", now - 60_000)
    other = Alert({"alertname": "HighFailureRate", "market": "AR"}, {"summary": "ar"}, "firing", now - 60_000)
    with NotificationPipeline(cfg, ":memory:", ManualClock(now)) as p:
        p.process([firing, other], now)
        assert p.flush(now).sent == {"am": 1}
        listed = httpx.get(f"{alertmanager}/api/v2/alerts", timeout=5).json()
        by_market = {a["labels"]["market"]: a for a in listed}
        assert set(by_market) == {"BR", "AR"}
        assert by_market["BR"]["annotations"]["runbook_url"] == ANNOTATIONS["runbook_url"]
        assert by_market["BR"]["fingerprint"] == firing.fingerprint  # same fingerprint algorithm
        assert by_market["BR"]["status"]["state"] == "active"
        # resolve AR: Alertmanager marks it resolved (it leaves the active list)
        p.process([Alert(dict(other.labels), {"summary": "ar"}, "resolved", now - 60_000, now - 1_000)], now + 1_000)
        assert p.flush(now + 6 * 60_000).sent == {"am": 1}
        listed = {a["labels"]["market"]: a for a in httpx.get(f"{alertmanager}/api/v2/alerts", timeout=5).json()}
    # Alertmanager keeps BR firing and takes AR's end time from us (its endsAt is in the past: resolved)
    assert listed["BR"]["status"]["state"] == "active"
    assert "AR" not in listed or listed["AR"]["endsAt"].startswith(format_time(now - 1_000)[:19])
