"""Receiver integrations: one module per kind and the registry that builds them from the configuration.

Kinds: Slack, email, webhook, PagerDuty, Opsgenie, Microsoft Teams, Discord, Telegram (Alertmanager's
``<kind>_configs``) and Alertmanager (tunewatch's forwarding). Every HTTP kind goes through its
``http_config`` (or ``global.http_config``). Adding a kind means one new module here, its settings in
:mod:`tunewatch.notify.receiver_config`, and one entry in :data:`KINDS` and :func:`build_integrations`.
"""

from __future__ import annotations

from typing import Any

from tunewatch.notify.config import NotifyConfig
from tunewatch.notify.receiver_config import IntegrationConfig, ReceiverConfig
from tunewatch.notify.receivers.alertmanager import AlertmanagerIntegration
from tunewatch.notify.receivers.base import DeliveryError, Integration
from tunewatch.notify.receivers.discord import DiscordIntegration
from tunewatch.notify.receivers.email import EmailIntegration
from tunewatch.notify.receivers.msteams import MSTeamsIntegration
from tunewatch.notify.receivers.opsgenie import OpsgenieIntegration
from tunewatch.notify.receivers.pagerduty import PagerdutyIntegration
from tunewatch.notify.receivers.slack import SlackIntegration
from tunewatch.notify.receivers.telegram import TelegramIntegration
from tunewatch.notify.receivers.webhook import WebhookIntegration

__all__ = ["KINDS", "DeliveryError", "Integration", "build_integrations", "integration_slots"]

#: (integration kind, the receiver's config list) in a stable order
KINDS: tuple[tuple[str, str], ...] = (
    ("slack", "slack_configs"), ("email", "email_configs"), ("webhook", "webhook_configs"),
    ("alertmanager", "alertmanager_configs"), ("pagerduty", "pagerduty_configs"), ("opsgenie", "opsgenie_configs"),
    ("msteams", "msteams_configs"), ("discord", "discord_configs"), ("telegram", "telegram_configs"),
)  # fmt: skip


def integration_slots(receiver: ReceiverConfig) -> list[tuple[str, int, bool]]:
    """``(kind, index, send_resolved)`` of each integration of a receiver, in a stable order."""
    return [(kind, i, c.send_resolved) for kind, attr in KINDS for i, c in enumerate(getattr(receiver, attr))]


def build_integrations(config: NotifyConfig) -> dict[str, Integration]:
    """Every configured integration, keyed ``receiver|kind/index`` (see ``Notification.integration_key``)."""
    g = config.global_
    ext = config.external_url
    tpl = config.notify_templates
    out: dict[str, Integration] = {}
    for r in config.receivers:
        for i, s in enumerate(r.slack_configs):
            url = s.api_url or g.slack_api_url
            assert url is not None  # checked by NotifyConfig
            out[f"{r.name}|slack/{i}"] = SlackIntegration(
                r.name, url=url.get_secret_value(), config=s, timeout_s=config.http_timeout_s(s.timeout),
                fields=tpl.for_integration(r.name, "slack_configs", i), external_url=ext,
                http_config=s.http_config or g.http_config,
            )  # fmt: skip
        for i, e in enumerate(r.email_configs):
            password = e.auth_password or g.smtp_auth_password
            out[f"{r.name}|email/{i}"] = EmailIntegration(
                r.name, to=e.to, sender=e.from_ or g.smtp_from or "", smarthost=e.smarthost or g.smtp_smarthost or "",
                send_resolved=e.send_resolved, timeout_s=config.http_timeout_s(e.timeout),
                hello=e.hello or g.smtp_hello,
                username=e.auth_username or g.smtp_auth_username,
                password=password.get_secret_value() if password else None,
                require_tls=g.smtp_require_tls if e.require_tls is None else e.require_tls,
                tls=e.tls_config.context(), headers=e.headers,
                fields=tpl.for_integration(r.name, "email_configs", i), external_url=ext,
            )  # fmt: skip
        for i, w in enumerate(r.webhook_configs):
            assert w.url is not None
            out[f"{r.name}|webhook/{i}"] = WebhookIntegration(
                r.name, url=w.url.get_secret_value(), send_resolved=w.send_resolved,
                timeout_s=config.http_timeout_s(w.timeout), external_url=ext, max_alerts=w.max_alerts,
                http_config=w.http_config or g.http_config,
            )  # fmt: skip
        for i, a in enumerate(r.alertmanager_configs):
            assert a.url is not None
            out[f"{r.name}|alertmanager/{i}"] = AlertmanagerIntegration(
                r.name, url=a.url.get_secret_value(), send_resolved=a.send_resolved,
                timeout_s=config.http_timeout_s(a.timeout), http_config=a.http_config or g.http_config,
            )  # fmt: skip

        def common(attr: str, i: int, c: IntegrationConfig, name: str = r.name) -> dict[str, Any]:
            """The arguments every templated integration takes."""
            return {"timeout_s": config.http_timeout_s(c.timeout), "fields": tpl.for_integration(name, attr, i),
                    "external_url": ext, "http_config": c.http_config or g.http_config}  # fmt: skip

        for i, p in enumerate(r.pagerduty_configs):
            out[f"{r.name}|pagerduty/{i}"] = PagerdutyIntegration(
                r.name, config=p, url=p.url or g.pagerduty_url, templates=tpl, **common("pagerduty_configs", i, p)
            )
        for i, o in enumerate(r.opsgenie_configs):
            key = o.api_key or g.opsgenie_api_key
            assert key is not None  # checked by NotifyConfig
            out[f"{r.name}|opsgenie/{i}"] = OpsgenieIntegration(
                r.name, config=o, api_key=key.get_secret_value(), api_url=o.api_url or g.opsgenie_api_url,
                **common("opsgenie_configs", i, o),
            )  # fmt: skip
        for kind, attr, cls in (("msteams", "msteams_configs", MSTeamsIntegration),
                                ("discord", "discord_configs", DiscordIntegration)):  # fmt: skip
            for i, w in enumerate(getattr(r, attr)):
                assert w.webhook_url is not None
                out[f"{r.name}|{kind}/{i}"] = cls(
                    r.name, url=w.webhook_url.get_secret_value(), send_resolved=w.send_resolved, **common(attr, i, w)
                )
        for i, t in enumerate(r.telegram_configs):
            assert t.bot_token is not None
            out[f"{r.name}|telegram/{i}"] = TelegramIntegration(
                r.name, config=t, token=t.bot_token.get_secret_value(), api_url=t.api_url or g.telegram_api_url,
                **common("telegram_configs", i, t),
            )  # fmt: skip
    return out
