"""Slack incoming webhook with a Block Kit message (header, one section per alert, context), or Alertmanager's
attachment message rendered from templates when the config sets ``title``/``text``/``pretext``/``fallback``.

The request goes through the receiver's ``http_config`` (proxy, TLS, auth) like every HTTP integration.

All alert text is escaped for Slack ``mrkdwn`` (``&``, ``<``, ``>``), so alert content cannot inject links
or ``<!channel>`` mentions. Runbook links are included only for http(s) URLs.
"""

from __future__ import annotations

from typing import Any

from tunewatch.notify.httpconfig import HTTPConfig
from tunewatch.notify.message import AlertView, MessageView
from tunewatch.notify.outbox import Notification
from tunewatch.notify.receiver_config import SlackConfig
from tunewatch.notify.receivers.base import HttpIntegration
from tunewatch.notify.templates import FieldTemplates, NotificationData, notification_data

_MAX_ALERT_SECTIONS = 20  # Slack allows 50 blocks a message
_SECTION_LIMIT = 3000
_HEADER_LIMIT = 150
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


def attachment_message(fields: FieldTemplates, data: NotificationData, *, link_names: bool,
                       mrkdwn_in: list[str] | None, extra_fields: list[dict[str, Any]],
                       actions: list[dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    """Alertmanager's Slack message: one attachment rendered from the configured templates (unset fields use
    Alertmanager's defaults: ``slack.default.title`` and friends)."""

    def r(name: str, default: str = "") -> str:
        return fields.render(name, data, default)

    attachment: dict[str, Any] = {
        "title": r("title"), "title_link": r("title_link"), "pretext": r("pretext"), "text": r("text"),
        "fallback": r("fallback"), "callback_id": r("callback_id"), "footer": r("footer"),
        "color": r("color", "danger" if data.Status == "firing" else "good"),
        "mrkdwn_in": mrkdwn_in if mrkdwn_in is not None else ["fallback", "pretext", "text"],
        "image_url": r("image_url"), "thumb_url": r("thumb_url"),
    }  # fmt: skip
    if extra_fields:
        attachment["fields"] = [
            {"title": r(f"fields.{k}.title"), "value": r(f"fields.{k}.value"), **({"short": f["short"]}
             if f.get("short") is not None else {})} for k, f in enumerate(extra_fields)
        ]  # fmt: skip
    if actions:
        attachment["actions"] = actions
    body: dict[str, Any] = {"attachments": [{k: v for k, v in attachment.items() if v not in ("", None)}]}
    for key in ("channel", "username", "icon_emoji", "icon_url"):
        value = r(key)
        if value:
            body[key] = value
    if link_names:
        body["link_names"] = True
    return body


class SlackIntegration(HttpIntegration):
    """Post to a Slack incoming webhook: tunewatch's Block Kit message, or Alertmanager's attachment message
    when the config sets ``title``/``text``/``pretext``/``fallback``."""

    kind = "slack"

    def __init__(self, receiver: str, *, url: str, config: SlackConfig, timeout_s: float, fields: FieldTemplates,
                 external_url: str, http_config: HTTPConfig | None) -> None:  # fmt: skip
        super().__init__(receiver, send_resolved=config.send_resolved, timeout_s=timeout_s, http_config=http_config,
                         secrets=[url])  # fmt: skip
        self._url, self._config, self._fields, self._external_url = url, config, fields, external_url

    def send(self, notification: Notification, alerts: list[dict[str, Any]]) -> None:
        """Send the message; Slack answers 200 ``ok`` on success."""
        c = self._config
        if c.templated:
            data = notification_data(notification, alerts, self._external_url)
            body = attachment_message(self._fields, data, link_names=c.link_names, mrkdwn_in=c.mrkdwn_in,
                                      extra_fields=[f.model_dump() for f in c.fields], actions=c.actions)  # fmt: skip
        else:
            view = MessageView.build(notification.receiver, notification.group_labels, alerts)
            body = slack_message(view, channel=c.channel, username=c.username, icon_emoji=c.icon_emoji)
        self.post(self._url, body, headers={"Idempotency-Key": notification.id})
