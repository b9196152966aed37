"""Receiver integrations: one module per kind (Slack, email, webhook, Alertmanager) and the registry that builds them.

Adding a receiver kind means one new module here and one entry in :func:`build_integrations`. Slack's client
(slack-sdk, in the ``server`` extra) is imported only when a receiver uses Slack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tunewatch.errors import ConfigError
from tunewatch.notify.config import NotifyConfig, ReceiverConfig
from tunewatch.notify.receivers.alertmanager import AlertmanagerIntegration
from tunewatch.notify.receivers.base import DeliveryError, Integration
from tunewatch.notify.receivers.email import EmailIntegration
from tunewatch.notify.receivers.webhook import WebhookIntegration

if TYPE_CHECKING:
    from tunewatch.notify.receivers.slack import SlackIntegration

__all__ = ["DeliveryError", "Integration", "build_integrations", "integration_slots"]


def integration_slots(receiver: ReceiverConfig) -> list[tuple[str, int, bool]]:
    """``(kind, index, send_resolved)`` of each integration of a receiver, in a stable order."""
    out: list[tuple[str, int, bool]] = []
    out += [("slack", i, c.send_resolved) for i, c in enumerate(receiver.slack_configs)]
    out += [("email", i, c.send_resolved) for i, c in enumerate(receiver.email_configs)]
    out += [("webhook", i, c.send_resolved) for i, c in enumerate(receiver.webhook_configs)]
    out += [("alertmanager", i, c.send_resolved) for i, c in enumerate(receiver.alertmanager_configs)]
    return out


def _slack(receiver: str) -> type[SlackIntegration]:
    try:
        from tunewatch.notify.receivers.slack import SlackIntegration
    except ImportError:
        raise ConfigError(
            f"receivers: {receiver}: slack_configs need the slack-sdk package: pip install 'tunewatch[server]'"
        ) from None
    return SlackIntegration


def build_integrations(config: NotifyConfig) -> dict[str, Integration]:
    """Every configured integration, keyed ``receiver|kind/index`` (see ``Notification.integration_key``)."""
    g = config.global_
    out: dict[str, Integration] = {}
    for r in config.receivers:

        def timeout(value: int | None) -> float:
            return (value if value is not None else g.http_timeout) / 1000

        for i, s in enumerate(r.slack_configs):
            url = s.api_url or g.slack_api_url
            assert url is not None  # checked by NotifyConfig
            out[f"{r.name}|slack/{i}"] = _slack(r.name)(
                r.name, url=url.get_secret_value(), send_resolved=s.send_resolved, timeout_s=timeout(s.timeout),
                channel=s.channel, username=s.username, icon_emoji=s.icon_emoji,
            )  # fmt: skip
        for i, e in enumerate(r.email_configs):
            password = e.auth_password or g.smtp_auth_password
            out[f"{r.name}|email/{i}"] = EmailIntegration(
                r.name, to=e.to, sender=e.from_ or g.smtp_from or "", smarthost=e.smarthost or g.smtp_smarthost or "",
                send_resolved=e.send_resolved, timeout_s=timeout(e.timeout), hello=e.hello or g.smtp_hello,
                username=e.auth_username or g.smtp_auth_username,
                password=password.get_secret_value() if password else None,
                require_tls=g.smtp_require_tls if e.require_tls is None else e.require_tls,
                ca_file=e.tls_config.ca_file, insecure_skip_verify=e.tls_config.insecure_skip_verify, headers=e.headers,
            )  # fmt: skip
        for i, w in enumerate(r.webhook_configs):
            assert w.url is not None
            out[f"{r.name}|webhook/{i}"] = WebhookIntegration(
                r.name, url=w.url.get_secret_value(), send_resolved=w.send_resolved, timeout_s=timeout(w.timeout),
                external_url=config.external_url, max_alerts=w.max_alerts,
            )  # fmt: skip
        for i, a in enumerate(r.alertmanager_configs):
            assert a.url is not None
            out[f"{r.name}|alertmanager/{i}"] = AlertmanagerIntegration(
                r.name, url=a.url.get_secret_value(), send_resolved=a.send_resolved, timeout_s=timeout(a.timeout)
            )
    return out
