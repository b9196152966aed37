"""Discord webhook: one embed (title, description, colour), as Alertmanager's ``discord_configs`` sends it."""

from __future__ import annotations

from typing import Any

from tunewatch.notify.httpconfig import HTTPConfig
from tunewatch.notify.outbox import Notification
from tunewatch.notify.receivers.base import HttpIntegration, truncate
from tunewatch.notify.templates import FieldTemplates, notification_data

TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
COLORS = {"firing": 0x992D22, "resolved": 0x2ECC71}


class DiscordIntegration(HttpIntegration):
    """POST an embed to a Discord webhook (Discord answers 204)."""

    kind = "discord"

    def __init__(self, receiver: str, *, url: str, send_resolved: bool, timeout_s: float, fields: FieldTemplates,
                 external_url: str, http_config: HTTPConfig | None) -> None:  # fmt: skip
        super().__init__(receiver, send_resolved=send_resolved, timeout_s=timeout_s, http_config=http_config,
                         secrets=[url])  # fmt: skip
        self._url, self._fields, self._external_url = url, fields, external_url

    def body(self, notification: Notification, alerts: list[dict[str, Any]]) -> dict[str, Any]:
        """The webhook JSON."""
        data = notification_data(notification, alerts, self._external_url)
        f = self._fields
        embed = {
            "title": truncate(f.render("title", data), TITLE_LIMIT),
            "description": truncate(f.render("message", data), DESCRIPTION_LIMIT),
            "color": COLORS[data.Status],
        }
        return {"embeds": [embed]}  # fmt: skip

    def send(self, notification: Notification, alerts: list[dict[str, Any]]) -> None:
        """POST the message."""
        self.post(self._url, self.body(notification, alerts))
