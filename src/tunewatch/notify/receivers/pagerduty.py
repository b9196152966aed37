"""PagerDuty: Events API v2 (``routing_key``) or the older v1 (``service_key``), as Alertmanager sends them.

One PagerDuty incident per alert group: the ``dedup_key`` (v1: ``incident_key``) is the SHA-256 of the group
key, so a resolved notification resolves the incident its firing one opened. PagerDuty answers 202.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from tunewatch.notify.httpconfig import HTTPConfig
from tunewatch.notify.outbox import Notification
from tunewatch.notify.receiver_config import PagerdutyConfig
from tunewatch.notify.receivers.base import TemplatedIntegration, truncate
from tunewatch.notify.templates import FieldTemplates, NotifyTemplates

log = logging.getLogger(__name__)

V1_URL = "https://events.pagerduty.com/generic/2010-04-15/create_event.json"
SEVERITIES = ("critical", "error", "warning", "info")
SUMMARY_LIMIT = 1024


def hash_key(group_key: str) -> str:
    """The SHA-256 hex digest of a group key (Alertmanager's dedup key / alias)."""
    return hashlib.sha256(group_key.encode()).hexdigest()


class PagerdutyIntegration(TemplatedIntegration):
    """POST an event per notification: ``trigger`` while any alert fires, ``resolve`` when all resolved."""

    kind = "pagerduty"

    def __init__(self, receiver: str, *, config: PagerdutyConfig, url: str, timeout_s: float, fields: FieldTemplates,
                 templates: NotifyTemplates, external_url: str, http_config: HTTPConfig | None) -> None:  # fmt: skip
        key = config.routing_key or config.service_key
        assert key is not None  # checked by PagerdutyConfig
        endpoint = url if config.routing_key is not None else (config.url or V1_URL)
        super().__init__(receiver, url=endpoint, send_resolved=config.send_resolved, timeout_s=timeout_s,
                         fields=fields, external_url=external_url, http_config=http_config,
                         secrets=[key.get_secret_value()])  # fmt: skip
        self._config, self._key, self._templates = config, key.get_secret_value(), templates

    def body(self, notification: Notification, alerts: list[dict[str, Any]]) -> dict[str, Any]:
        """The event JSON for this notification."""
        c = self._config
        data = self.data(notification, alerts)
        f = self.fields
        description = truncate(f.render("description", data), SUMMARY_LIMIT)
        client = f.render("client", data)
        client_url = f.render("client_url", data)
        if c.details is not None:
            details: dict[str, Any] = {k: f.render(f"details.{k}", data) for k in c.details}
        else:
            t = self._templates
            details = {
                "firing": t.render_named("pagerduty.default.instances", data.Alerts.Firing()),
                "resolved": t.render_named("pagerduty.default.instances", data.Alerts.Resolved()),
                "num_firing": str(len(data.Alerts.Firing())),
                "num_resolved": str(len(data.Alerts.Resolved())),
            }
        firing = data.Status == "firing"
        if c.service_key is not None:  # Events API v1
            return {"service_key": self._key, "event_type": "trigger" if firing else "resolve",
                    "incident_key": hash_key(notification.group_key), "description": description,
                    "client": client, "client_url": client_url, "details": details}  # fmt: skip
        severity = f.render("severity", data, c.severity).strip().lower()
        if severity not in SEVERITIES:
            log.warning("pagerduty severity %r is not one of %s: sending 'error'", severity, ", ".join(SEVERITIES))
            severity = "error"
        payload: dict[str, Any] = {"summary": description, "source": f.render("source", data) or client,
                                   "severity": severity, "custom_details": details}  # fmt: skip
        for name in ("class", "component", "group"):
            value = f.render(name, data)
            if value:
                payload[name] = value
        event: dict[str, Any] = {"routing_key": self._key, "event_action": "trigger" if firing else "resolve",
                                 "dedup_key": hash_key(notification.group_key), "payload": payload,
                                 "client": client, "client_url": client_url}  # fmt: skip
        if c.images:
            event["images"] = [i.model_dump() for i in c.images]
        if c.links:
            event["links"] = [link.model_dump() for link in c.links]
        return event
