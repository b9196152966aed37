"""Telegram Bot API ``sendMessage``, as Alertmanager's ``telegram_configs`` sends it.

With ``parse_mode: HTML`` (the default) the message template is rendered with HTML escaping, so alert text
cannot inject markup. Telegram answers ``{"ok": true, ...}``; ``"ok": false`` is a failure.
"""

from __future__ import annotations

from typing import Any

from tunewatch.notify.httpconfig import HTTPConfig
from tunewatch.notify.outbox import Notification
from tunewatch.notify.receiver_config import TelegramConfig
from tunewatch.notify.receivers.base import HttpIntegration, truncate
from tunewatch.notify.templates import FieldTemplates, notification_data

MESSAGE_LIMIT = 4096


class TelegramIntegration(HttpIntegration):
    """Send one chat message per notification."""

    kind = "telegram"

    def __init__(self, receiver: str, *, config: TelegramConfig, token: str, api_url: str, timeout_s: float,
                 fields: FieldTemplates, external_url: str, http_config: HTTPConfig | None) -> None:  # fmt: skip
        super().__init__(receiver, send_resolved=config.send_resolved, timeout_s=timeout_s, http_config=http_config,
                         secrets=[token])  # fmt: skip
        self._config, self._fields, self._external_url = config, fields, external_url
        self._url = f"{api_url.rstrip('/')}/bot{token}/sendMessage"

    def body(self, notification: Notification, alerts: list[dict[str, Any]]) -> dict[str, Any]:
        """The ``sendMessage`` JSON."""
        c = self._config
        data = notification_data(notification, alerts, self._external_url)
        out: dict[str, Any] = {"chat_id": c.chat_id, "text": truncate(self._fields.render("message", data).strip(),
                               MESSAGE_LIMIT), "disable_notification": c.disable_notifications}  # fmt: skip
        if c.parse_mode:
            out["parse_mode"] = c.parse_mode
        if c.message_thread_id is not None:
            out["message_thread_id"] = c.message_thread_id
        return out

    def send(self, notification: Notification, alerts: list[dict[str, Any]]) -> None:
        """POST the message; an answer without ``"ok": true`` is a permanent failure."""
        resp = self.post(self._url, self.body(notification, alerts))
        try:
            ok = resp.json().get("ok") is True
        except ValueError:
            ok = False
        if not ok:
            raise self.fail("got an answer without ok=true", retryable=False)
