"""Generic webhook: POST Alertmanager's webhook payload (version 4) as JSON.

Each request carries an ``Idempotency-Key`` header equal to the notification id, stable across retries, so
a receiver that answered too late for our timeout can drop the repeat.
"""

from __future__ import annotations

from typing import Any

from tunewatch.notify.httpconfig import HTTPConfig
from tunewatch.notify.message import MessageView
from tunewatch.notify.outbox import Notification
from tunewatch.notify.receivers.base import HttpIntegration


def webhook_payload(
    n: Notification, alerts: list[dict[str, Any]], *, external_url: str, max_alerts: int = 0
) -> dict[str, Any]:
    """Alertmanager's webhook payload, version 4, for ``alerts`` of notification ``n``."""
    view = MessageView.build(n.receiver, n.group_labels, alerts)
    shown = alerts[:max_alerts] if max_alerts else alerts
    return {
        "version": "4",
        "groupKey": n.group_key,
        "truncatedAlerts": len(alerts) - len(shown),
        "status": view.status,
        "receiver": n.receiver,
        "groupLabels": dict(n.group_labels),
        "commonLabels": view.common_labels,
        "commonAnnotations": view.common_annotations,
        "externalURL": external_url,
        "alerts": shown,
    }


class WebhookIntegration(HttpIntegration):
    """POST the v4 payload to a URL."""

    kind = "webhook"

    def __init__(self, receiver: str, *, url: str, send_resolved: bool, timeout_s: float, external_url: str,
                 max_alerts: int = 0, http_config: HTTPConfig | None = None) -> None:  # fmt: skip
        super().__init__(receiver, send_resolved=send_resolved, timeout_s=timeout_s, http_config=http_config,
                         secrets=[url])  # fmt: skip
        self._url = url
        self._external_url = external_url
        self._max_alerts = max_alerts

    def send(self, notification: Notification, alerts: list[dict[str, Any]]) -> None:
        """POST the payload; 2xx is success, 5xx/408/429 and network errors are retryable."""
        payload = webhook_payload(notification, alerts, external_url=self._external_url, max_alerts=self._max_alerts)
        self.post(self._url, payload, headers={"Idempotency-Key": notification.id})
