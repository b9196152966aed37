"""Forward alerts to a real Prometheus Alertmanager through its API v2 (``POST /api/v2/alerts``).

Alertmanager deduplicates by label set itself, so re-sending after a timeout is harmless. As Prometheus does,
firing alerts are posted again every ``resend_interval`` with ``endsAt`` four intervals ahead (set by the
notification pipeline), so Alertmanager keeps them firing for as long as tunewatch does, whatever its
``resolve_timeout``, and resolves them by itself only if tunewatch stops posting; resolved ones carry their end
time.
"""

from __future__ import annotations

from typing import Any

from tunewatch.notify.httpconfig import HTTPConfig
from tunewatch.notify.outbox import Notification
from tunewatch.notify.receivers.base import HttpIntegration


def postable_alerts(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Alertmanager API v2 ``PostableAlerts`` for alert dicts from ``Alert.to_dict()``."""
    out = []
    for a in alerts:
        item: dict[str, Any] = {
            "labels": dict(a.get("labels", {})),
            "annotations": dict(a.get("annotations", {})),
            "startsAt": a.get("startsAt"),
        }
        if a.get("generatorURL"):
            item["generatorURL"] = a["generatorURL"]
        if a.get("endsAt") and not str(a["endsAt"]).startswith("0001-"):
            item["endsAt"] = a["endsAt"]
        out.append(item)
    return out


class AlertmanagerIntegration(HttpIntegration):
    """POST alerts to ``<url>/api/v2/alerts``."""

    kind = "alertmanager"

    def __init__(self, receiver: str, *, url: str, send_resolved: bool, timeout_s: float,
                 http_config: HTTPConfig | None = None) -> None:  # fmt: skip
        super().__init__(receiver, send_resolved=send_resolved, timeout_s=timeout_s, http_config=http_config,
                         secrets=[url])  # fmt: skip
        self._endpoint = url.rstrip("/") + "/api/v2/alerts"

    def send(self, notification: Notification, alerts: list[dict[str, Any]]) -> None:
        """POST the alerts; 2xx is success."""
        self.post(self._endpoint, postable_alerts(alerts))
