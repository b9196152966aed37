"""Discord webhook: one embed (title, description, colour), as Alertmanager's ``discord_configs`` sends it."""

from __future__ import annotations

from typing import Any

from tunewatch.notify.outbox import Notification
from tunewatch.notify.receivers.base import TemplatedIntegration, truncate

TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
COLORS = {"firing": 0x992D22, "resolved": 0x2ECC71}


class DiscordIntegration(TemplatedIntegration):
    """POST an embed to a Discord webhook (Discord answers 204)."""

    kind = "discord"

    def body(self, notification: Notification, alerts: list[dict[str, Any]]) -> dict[str, Any]:
        """The webhook JSON."""
        data = self.data(notification, alerts)
        f = self.fields
        embed = {
            "title": truncate(f.render("title", data), TITLE_LIMIT),
            "description": truncate(f.render("message", data), DESCRIPTION_LIMIT),
            "color": COLORS[data.Status],
        }
        out: dict[str, Any] = {"embeds": [embed]}
        for name in ("content", "username", "avatar_url"):
            value = f.render(name, data)
            if value:
                out[name] = value
        return out
