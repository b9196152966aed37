"""Email over SMTP: STARTTLS (or implicit TLS on port 465), optional AUTH, a plain-text and an HTML part.

Every label and annotation value is HTML-escaped in the HTML part; header values are stripped of control
characters so alert text cannot inject headers.
"""

from __future__ import annotations

import html
import re
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from tunewatch.notify.message import AlertView, MessageView
from tunewatch.notify.outbox import Notification
from tunewatch.notify.receivers.base import Integration
from tunewatch.notify.templates import FieldTemplates, notification_data

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_COLOR = {"firing": "#d93025", "resolved": "#188038"}


def header_safe(text: str, limit: int = 250) -> str:
    """One-line header value: control characters (CR, LF, ...) become spaces; long values are cut."""
    text = _CONTROL.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def text_body(view: MessageView) -> str:
    """The plain-text part."""
    out = [view.title, ""]
    for a in view.alerts:
        out.append(f"[{a.status.upper()}] {a.name}" + (f" ({a.severity})" if a.severity else ""))
        if a.dims:
            out.append(f"  {a.dims}")
        if a.summary:
            out.append(f"  {a.summary}")
        if a.description:
            out.append(f"  {a.description}")
        out += [f"  {title}: {value}" for title, value in a.explanation]
        if a.runbook_url:
            out.append(f"  Runbook: {a.runbook_url}")
        out.append(f"  Started: {a.starts_at}")
        out.append("")
    out.append(f"{view.firing_count} firing, {view.resolved_count} resolved · receiver {view.receiver}")
    return "\n".join(out)


def _alert_html(a: AlertView) -> str:
    e = html.escape
    rows = "".join(f"<tr><th align='left'>{e(title)}</th><td>{e(value)}</td></tr>" for title, value in a.explanation)
    parts = [
        f"<h3 style='color:{_COLOR.get(a.status, '#000')}'>[{e(a.status.upper())}] {e(a.name)}"
        + (f" ({e(a.severity)})" if a.severity else "")
        + "</h3>"
    ]
    if a.dims:
        parts.append(f"<p><code>{e(a.dims)}</code></p>")
    if a.summary:
        parts.append(f"<p>{e(a.summary)}</p>")
    if a.description:
        parts.append(f"<p><em>{e(a.description)}</em></p>")
    if rows:
        parts.append(f"<table>{rows}</table>")
    if a.runbook_url:
        parts.append(f'<p><a href="{e(a.runbook_url, quote=True)}">Runbook</a></p>')
    parts.append(f"<p><small>Started {e(a.starts_at)}</small></p>")
    return "".join(parts)


def html_body(view: MessageView) -> str:
    """The HTML part; all alert text is escaped."""
    e = html.escape
    alerts = "<hr>".join(_alert_html(a) for a in view.alerts)
    return (
        "<!DOCTYPE html><html><body style='font-family:sans-serif'>"
        f"<h2>{e(view.title)}</h2>{alerts}"
        f"<p><small>{view.firing_count} firing, {view.resolved_count} resolved · "
        f"receiver {e(view.receiver)}</small></p>"
        "</body></html>"
    )


class EmailIntegration(Integration):
    """Send one multipart email per notification."""

    kind = "email"

    def __init__(self, receiver: str, *, to: str, sender: str, smarthost: str, send_resolved: bool, timeout_s: float,
                 hello: str = "localhost", username: str | None = None, password: str | None = None,
                 require_tls: bool = True, tls: ssl.SSLContext | None = None, headers: dict[str, str] | None = None,
                 fields: FieldTemplates | None = None, external_url: str = "") -> None:  # fmt: skip
        super().__init__(receiver, send_resolved=send_resolved, timeout_s=timeout_s, secrets=[password or ""])
        host, _, port = smarthost.rpartition(":")
        self._host, self._port = host.strip("[]"), int(port)
        self._to, self._from, self._hello = to, sender, hello
        self._username, self._password = username, password
        self._require_tls = require_tls
        self._headers = headers or {}
        self._fields = fields
        self._external_url = external_url
        self._tls = tls or ssl.create_default_context()

    def message(self, notification: Notification, alerts: list[dict[str, Any]]) -> EmailMessage:
        """The email for ``alerts`` of ``notification``: tunewatch's text and HTML parts, or the configured
        ``text``/``html`` templates; a ``Subject`` header template overrides the subject."""
        view = MessageView.build(notification.receiver, notification.group_labels, alerts)
        f = self._fields
        data = notification_data(notification, alerts, self._external_url) if f is not None else None
        msg = EmailMessage()
        subject = view.title
        if f is not None and data is not None and f.has("headers.Subject"):
            subject = f.render("headers.Subject", data, view.title)
        msg["Subject"] = header_safe(subject)
        msg["From"] = self._from
        msg["To"] = header_safe(f.render("to", data, self._to)) if f is not None and data is not None else self._to
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(idstring=notification.id, domain="tunewatch")
        msg["X-Tunewatch-Notification"] = notification.id
        for name, value in self._headers.items():
            if name.lower() not in ("subject", "from", "to"):
                shown = f.render(f"headers.{name}", data, value) if f is not None and data is not None else value
                msg[header_safe(name, 70)] = header_safe(shown)
        text = text_body(view)
        html_part = html_body(view)
        if f is not None and data is not None:
            text = f.render("text", data, text) if f.has("text") else text
            html_part = f.render("html", data, html_part) if f.has("html") else html_part
        msg.set_content(text)
        msg.add_alternative(html_part, subtype="html")
        return msg

    def send(self, notification: Notification, alerts: list[dict[str, Any]]) -> None:
        """Deliver over SMTP; 4xx replies and network errors are retryable, 5xx replies are not."""
        msg = self.message(notification, alerts)
        try:
            if self._port == 465:
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(self._host, self._port, local_hostname=self._hello,
                                                      timeout=self.timeout_s, context=self._tls)  # fmt: skip
            else:
                smtp = smtplib.SMTP(self._host, self._port, local_hostname=self._hello, timeout=self.timeout_s)
            with smtp:
                smtp.ehlo()
                if self._port != 465 and self._require_tls:
                    if not smtp.has_extn("starttls"):
                        raise self.fail("requires TLS but the server does not offer STARTTLS", retryable=False)
                    smtp.starttls(context=self._tls)
                    smtp.ehlo()
                if self._username:
                    smtp.login(self._username, self._password or "")
                smtp.send_message(msg)
        except smtplib.SMTPResponseException as exc:
            code = int(exc.smtp_code)
            raise self.fail(f"got SMTP {code}", retryable=400 <= code < 500) from None
        except smtplib.SMTPRecipientsRefused:
            raise self.fail("recipients refused", retryable=False) from None
        except ssl.SSLCertVerificationError as exc:
            raise self.fail("TLS certificate rejected", exc, retryable=False) from None
        except TimeoutError as exc:
            raise self.fail(f"timed out after {self.timeout_s:g}s", exc) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise self.fail("failed", exc) from None
