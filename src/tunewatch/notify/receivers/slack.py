"""Slack incoming webhook with a Block Kit message (header, one section per alert, context).

All alert text is escaped for Slack ``mrkdwn`` (``&``, ``<``, ``>``), so alert content cannot inject links
or ``<!channel>`` mentions. Runbook links are included only for http(s) URLs.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk.webhook import WebhookClient

from tunewatch.notify.message import AlertView, MessageView
from tunewatch.notify.outbox import Notification
from tunewatch.notify.receivers.base import Integration, http_status_retryable

_MAX_ALERT_SECTIONS = 20  # Slack allows 50 blocks a message
_SECTION_LIMIT = 3000
_HEADER_LIMIT = 150
# slack-sdk logs request URLs (which hold the webhook secret) at debug level: keep its logger silent
_SDK_LOGGER = logging.getLogger("tunewatch.notify.slack.sdk")
_SDK_LOGGER.disabled = True
_SDK_LOGGER.propagate = False
_STATUS_ICON = {"firing": ":red_circle:", "resolved": ":large_green_circle:"}


def escape_mrkdwn(text: str) -> str:
    """Escape ``&``, ``<`` and ``>`` as Slack requires for ``mrkdwn`` text.

    >>> escape_mrkdwn("<!channel> & <https://evil|click>")
    '&lt;!channel&gt; &amp; &lt;https://evil|click&gt;'
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _link(url: str, label: str) -> str:
    return f"<{escape_mrkdwn(url).replace('|', '%7C')}|{label}>"


def _alert_text(a: AlertView) -> str:
    head = f"{_STATUS_ICON.get(a.status, '')} *{a.status.upper()}* *{escape_mrkdwn(a.name)}*"
    if a.severity:
        head += f" ({escape_mrkdwn(a.severity)})"
    lines = [head]
    if a.dims:
        lines.append(escape_mrkdwn(a.dims))
    if a.summary:
        lines.append(escape_mrkdwn(a.summary))
    if a.description:
        lines.append(f"_{escape_mrkdwn(a.description)}_")
    lines += [f"*{title}:* {escape_mrkdwn(value)}" for title, value in a.explanation]
    if a.runbook_url:
        lines.append(_link(a.runbook_url, "Runbook"))
    text = "\n".join(lines)
    return text if len(text) <= _SECTION_LIMIT else text[: _SECTION_LIMIT - 1] + "…"


def slack_message(view: MessageView, *, channel: str | None = None, username: str | None = None,
                  icon_emoji: str | None = None) -> dict[str, Any]:  # fmt: skip
    """The JSON body for an incoming webhook: fallback ``text`` plus Block Kit ``blocks``."""
    title = view.title if len(view.title) <= _HEADER_LIMIT else view.title[: _HEADER_LIMIT - 1] + "…"
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": title}}]
    for a in view.alerts[:_MAX_ALERT_SECTIONS]:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _alert_text(a)}})
    hidden = len(view.alerts) - _MAX_ALERT_SECTIONS
    footer = f"{view.firing_count} firing, {view.resolved_count} resolved · receiver {escape_mrkdwn(view.receiver)}"
    if hidden > 0:
        footer += f" · {hidden} more alert(s) not shown"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": footer}]})
    body: dict[str, Any] = {"text": escape_mrkdwn(view.title), "blocks": blocks}
    for key, value in (("channel", channel), ("username", username), ("icon_emoji", icon_emoji)):
        if value:
            body[key] = value
    return body


class SlackIntegration(Integration):
    """Post to a Slack incoming webhook through slack-sdk's :class:`WebhookClient`."""

    kind = "slack"

    def __init__(self, receiver: str, *, url: str, send_resolved: bool, timeout_s: float, channel: str | None = None,
                 username: str | None = None, icon_emoji: str | None = None) -> None:  # fmt: skip
        super().__init__(receiver, send_resolved=send_resolved, timeout_s=timeout_s, secrets=[url])
        # retries are ours (outbox + tenacity): no slack-sdk retry handlers
        self._client = WebhookClient(url, timeout=timeout_s, retry_handlers=[], logger=_SDK_LOGGER)  # type: ignore[arg-type]
        self._extra = {"channel": channel, "username": username, "icon_emoji": icon_emoji}

    def send(self, notification: Notification, alerts: list[dict[str, Any]]) -> None:
        """Send the Block Kit message; Slack answers 200 ``ok`` on success."""
        view = MessageView.build(notification.receiver, notification.group_labels, alerts)
        body = slack_message(view, **self._extra)
        try:
            resp = self._client.send_dict(body, headers={"Idempotency-Key": notification.id})
        except TimeoutError as exc:
            raise self.fail(f"timed out after {self.timeout_s:g}s", exc) from None
        except Exception as exc:  # urllib raises URLError, http.client errors, ...
            raise self.fail("failed", exc) from None
        if not 200 <= resp.status_code < 300:
            raise self.fail(f"got HTTP {resp.status_code}", retryable=http_status_retryable(resp.status_code))
