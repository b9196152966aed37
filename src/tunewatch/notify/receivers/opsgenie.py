"""Opsgenie Alert API v2, as Alertmanager sends it: create (``POST /v2/alerts``) while firing, close
(``POST /v2/alerts/<alias>/close?identifierType=alias``) when resolved.

The alias is the SHA-256 of the group key, so the close finds the alert the create opened. Authentication is
the ``Authorization: GenieKey <api_key>`` header.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tunewatch.notify.httpconfig import HTTPConfig
from tunewatch.notify.outbox import Notification
from tunewatch.notify.receiver_config import OpsgenieConfig
from tunewatch.notify.receivers.base import TemplatedIntegration, truncate
from tunewatch.notify.receivers.pagerduty import hash_key
from tunewatch.notify.templates import FieldTemplates

MESSAGE_LIMIT = 130
DESCRIPTION_LIMIT = 15_000
PRIORITIES = ("P1", "P2", "P3", "P4", "P5")


class OpsgenieIntegration(TemplatedIntegration):
    """Create or close one Opsgenie alert per alert group."""

    kind = "opsgenie"

    def __init__(self, receiver: str, *, config: OpsgenieConfig, api_key: str, api_url: str, timeout_s: float,
                 fields: FieldTemplates, external_url: str, http_config: HTTPConfig | None) -> None:  # fmt: skip
        super().__init__(receiver, url=api_url.rstrip("/") + "/v2/alerts", send_resolved=config.send_resolved,
                         timeout_s=timeout_s, fields=fields, external_url=external_url, http_config=http_config,
                         secrets=[api_key])  # fmt: skip
        self._config, self._key = config, api_key

    def body(self, notification: Notification, alerts: list[dict[str, Any]]) -> dict[str, Any]:
        """The create request's JSON (the close request's when every alert is resolved)."""
        c, f = self._config, self.fields
        data = self.data(notification, alerts)
        source = f.render("source", data)
        if data.Status == "resolved":
            return {"source": source}
        details = dict(data.CommonLabels) | {k: f.render(f"details.{k}", data) for k in c.details}
        body: dict[str, Any] = {"alias": hash_key(notification.group_key),
                                "message": truncate(f.render("message", data), MESSAGE_LIMIT),
                                "description": truncate(f.render("description", data), DESCRIPTION_LIMIT),
                                "details": details, "source": source}  # fmt: skip
        if c.responders:
            body["responders"] = [r.model_dump(exclude_none=True) for r in c.responders]
        tags = [t.strip() for t in f.render("tags", data).split(",") if t.strip()]
        if tags:
            body["tags"] = tags
        actions = [a.strip() for a in f.render("actions", data).split(",") if a.strip()]
        if actions:
            body["actions"] = actions
        for name in ("note", "entity"):
            value = f.render(name, data)
            if value:
                body[name] = value
        priority = f.render("priority", data).strip()
        if priority in PRIORITIES:
            body["priority"] = priority
        return body

    def send(self, notification: Notification, alerts: list[dict[str, Any]]) -> None:
        """POST the create (or close) request; Opsgenie answers 202."""
        body = self.body(notification, alerts)
        url = self.url
        if "alias" not in body:  # a close
            url = f"{self.url}/{quote(hash_key(notification.group_key))}/close?identifierType=alias"
        self.post(url, body, headers={"Authorization": f"GenieKey {self._key}"})
