"""Microsoft Teams incoming webhook: a ``MessageCard`` (title, summary, text, theme colour), as Alertmanager
0.26+'s ``msteams_configs`` sends it."""

from __future__ import annotations

from typing import Any

from tunewatch.notify.httpconfig import HTTPConfig
from tunewatch.notify.outbox import Notification
from tunewatch.notify.receivers.base import HttpIntegration
from tunewatch.notify.templates import FieldTemplates, notification_data

COLORS = {"firing": "8C1A1A", "resolved": "2DC72D"}


class MSTeamsIntegration(HttpIntegration):
    """POST a MessageCard to a Teams webhook."""

    kind = "msteams"

    def __init__(self, receiver: str, *, url: str, send_resolved: bool, timeout_s: float, fields: FieldTemplates,
                 external_url: str, http_config: HTTPConfig | None) -> None:  # fmt: skip
        super().__init__(receiver, send_resolved=send_resolved, timeout_s=timeout_s, http_config=http_config,
                         secrets=[url])  # fmt: skip
        self._url, self._fields, self._external_url = url, fields, external_url

    def card(self, notification: Notification, alerts: list[dict[str, Any]]) -> dict[str, Any]:
        """The MessageCard JSON."""
        data = notification_data(notification, alerts, self._external_url)
        f = self._fields
        return {"@type": "MessageCard", "@context": "http://schema.org/extensions",
                "title": f.render("title", data), "summary": f.render("summary", data),
                "text": f.render("text", data), "themeColor": COLORS[data.Status]}  # fmt: skip

    def send(self, notification: Notification, alerts: list[dict[str, Any]]) -> None:
        """POST the card; 2xx is success."""
        self.post(self._url, self.card(notification, alerts))
