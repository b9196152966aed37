"""Microsoft Teams incoming webhook: a ``MessageCard`` (title, summary, text, theme colour), as Alertmanager
0.26+'s ``msteams_configs`` sends it."""

from __future__ import annotations

from typing import Any

from tunewatch.notify.outbox import Notification
from tunewatch.notify.receivers.base import TemplatedIntegration

COLORS = {"firing": "8C1A1A", "resolved": "2DC72D"}


class MSTeamsIntegration(TemplatedIntegration):
    """POST a MessageCard to a Teams webhook."""

    kind = "msteams"

    def body(self, notification: Notification, alerts: list[dict[str, Any]]) -> dict[str, Any]:
        """The MessageCard JSON."""
        data = self.data(notification, alerts)
        f = self.fields
        return {"@type": "MessageCard", "@context": "http://schema.org/extensions",
                "title": f.render("title", data), "summary": f.render("summary", data),
                "text": f.render("text", data), "themeColor": COLORS[data.Status]}  # fmt: skip
