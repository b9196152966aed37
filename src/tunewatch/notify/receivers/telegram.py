"""Telegram Bot API ``sendMessage``, as Alertmanager's ``telegram_configs`` sends it.

With ``parse_mode: HTML`` (the default) the message template is rendered with HTML escaping, so alert text
cannot inject markup. Telegram answers ``{"ok": true, ...}``; ``"ok": false`` is a failure.
"""

from __future__ import annotations

from typing import Any

from tunewatch.notify.httpconfig import HTTPConfig
from tunewatch.notify.outbox import Notification
from tunewatch.notify.receiver_config import TelegramConfig
from tunewatch.notify.receivers.base import TemplatedIntegration, truncate
from tunewatch.notify.templates import FieldTemplates

MESSAGE_LIMIT = 4096


class TelegramIntegration(TemplatedIntegration):
    """Send one chat message per notification."""

    kind = "telegram"

    def __init__(self, receiver: str, *, config: TelegramConfig, token: str, api_url: str, timeout_s: float,
                 fields: FieldTemplates, external_url: str, http_config: HTTPConfig | None) -> None:  # fmt: skip
        endpoint = f"{api_url.rstrip('/')}/bot{token}/sendMessage"
        super().__init__(receiver, url=endpoint, send_resolved=config.send_resolved, timeout_s=timeout_s,
                         fields=fields, external_url=external_url, http_config=http_config,
                         secrets=[token])  # fmt: skip
        self._config = config

    def body(self, notification: Notification, alerts: list[dict[str, Any]]) -> dict[str, Any]:
        """The ``sendMessage`` JSON."""
        c = self._config
        text = self.fields.render("message", self.data(notification, alerts)).strip()
        out: dict[str, Any] = {"chat_id": c.chat_id, "text": truncate(text, MESSAGE_LIMIT),
                               "disable_notification": c.disable_notifications}  # fmt: skip
        if c.parse_mode:
            out["parse_mode"] = c.parse_mode
        if c.message_thread_id is not None:
            out["message_thread_id"] = c.message_thread_id
        return out

    def send(self, notification: Notification, alerts: list[dict[str, Any]]) -> None:
        """POST the message; an answer without ``"ok": true`` is a permanent failure."""
        resp = self.post(self.url, self.body(notification, alerts))
        try:
            ok = resp.json().get("ok") is True
        except ValueError:
            ok = False
        if not ok:
            raise self.fail("got an answer without ok=true", retryable=False)
