"""Receiver integration settings in Alertmanager's shape (``slack_configs``, ``pagerduty_configs``, ...).

Every text field that Alertmanager templates (titles, messages, details) is a Go template here too, compiled
when the configuration loads (see :mod:`tunewatch.notify.templates`). An unset text field means the
integration's default message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar

from limits import parse as parse_rate_limit
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, field_validator, model_validator

from tunewatch.durations import parse_duration_ms
from tunewatch.notify.httpconfig import HTTPConfig, TLSConfig, read_secret_file

DurationMs = Annotated[int, BeforeValidator(parse_duration_ms)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def secret_or_file(model: BaseModel, field: str, *, required: bool) -> dict[str, Any]:
    """Resolve ``field`` / ``field_file`` into ``field`` (a model-copy update); exactly one may be given."""
    value = getattr(model, field)
    path = getattr(model, f"{field}_file")
    if value is not None and path is not None:
        raise ValueError(f"give either {field} or {field}_file, not both")
    if value is None and path is not None:
        return {field: read_secret_file(f"{field}_file", path)}
    if value is None and required:
        raise ValueError(f"{field} (or {field}_file) is required")
    return {}


class _Files(_Model):
    """Integration whose secrets may come from ``*_file`` keys (listed in ``_secret_fields``)."""

    secret_fields: ClassVar[tuple[tuple[str, bool], ...]] = ()

    @model_validator(mode="after")
    def _load_files(self) -> _Files:
        updates: dict[str, Any] = {}
        for name, required in self.secret_fields:
            updates |= secret_or_file(self, name, required=required)
        return self.model_copy(update=updates) if updates else self


class IntegrationConfig(_Files):
    """Settings every integration has."""

    send_resolved: bool = True
    http_config: HTTPConfig | None = None  #: ``global.http_config`` when unset
    timeout: DurationMs | None = None  #: per-request timeout (tunewatch); the tunewatch settings' http_timeout


#: the text fields of each integration that are templates (``<kind>_configs`` key → field names)
TEMPLATED: dict[str, tuple[str, ...]] = {
    "slack_configs": ("title", "title_link", "pretext", "text", "fallback", "footer", "color", "callback_id",
                      "username", "channel", "icon_emoji", "icon_url", "image_url", "thumb_url"),
    "email_configs": ("to", "html", "text"),
    "pagerduty_configs": ("client", "client_url", "description", "severity", "class", "component", "group",
                          "source"),
    "opsgenie_configs": ("message", "description", "source", "entity", "actions", "tags", "note", "priority"),
    "msteams_configs": ("title", "summary", "text"),
    "discord_configs": ("title", "message", "content", "username", "avatar_url"),
    "telegram_configs": ("message",),
}  # fmt: skip


class SlackField(_Model):
    """A Slack attachment field."""

    title: str
    value: str
    short: bool | None = None


class SlackConfig(IntegrationConfig):
    """Slack incoming webhook. Without ``title``/``text``/``pretext``/``fallback`` the message is tunewatch's
    Block Kit message; with any of them it is Alertmanager's attachment message, rendered from the templates."""

    secret_fields = (("api_url", False),)
    send_resolved: bool = False
    api_url: SecretStr | None = None
    api_url_file: Path | None = None
    channel: str | None = None
    username: str | None = None
    icon_emoji: str | None = None
    icon_url: str | None = None
    link_names: bool = False
    title: str | None = None
    title_link: str | None = None
    pretext: str | None = None
    text: str | None = None
    fallback: str | None = None
    footer: str | None = None
    color: str | None = None
    callback_id: str | None = None
    image_url: str | None = None
    thumb_url: str | None = None
    short_fields: bool = False
    mrkdwn_in: list[str] | None = None
    fields: list[SlackField] = Field(default_factory=list)
    actions: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def templated(self) -> bool:
        """Whether the Alertmanager-style attachment message is used."""
        return any(v is not None for v in (self.title, self.text, self.pretext, self.fallback))


class EmailConfig(IntegrationConfig):
    """SMTP delivery (STARTTLS unless ``require_tls: false``; implicit TLS on port 465)."""

    secret_fields = (("auth_password", False),)
    send_resolved: bool = False
    to: str
    from_: str | None = Field(default=None, alias="from")
    smarthost: str | None = None
    hello: str | None = None
    auth_username: str | None = None
    auth_password: SecretStr | None = None
    auth_password_file: Path | None = None
    auth_identity: str | None = None
    auth_secret: SecretStr | None = None
    require_tls: bool | None = None
    tls_config: TLSConfig = TLSConfig()
    headers: dict[str, str] = Field(default_factory=dict)
    html: str | None = None  #: template of the HTML part (tunewatch's own HTML when unset)
    text: str | None = None  #: template of the text part (tunewatch's own text when unset)

    @field_validator("smarthost")
    @classmethod
    def _check_smarthost(cls, value: str | None) -> str | None:
        if value is not None:
            host, _, port = value.rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"smarthost {value!r} must be host:port")
        return value


class WebhookConfig(IntegrationConfig):
    """Generic webhook receiving Alertmanager's webhook payload (version 4)."""

    secret_fields = (("url", True),)
    url: SecretStr | None = None
    url_file: Path | None = None
    max_alerts: int = Field(default=0, ge=0)


class AlertmanagerConfig(IntegrationConfig):
    """Forward alerts to a real Alertmanager through ``POST /api/v2/alerts`` (tunewatch-specific: it belongs in
    the tunewatch settings, see :mod:`tunewatch.notify.config`)."""

    secret_fields = (("url", True),)
    url: SecretStr | None = None  #: base URL, e.g. ``http://127.0.0.1:9093``
    url_file: Path | None = None
    #: firing alerts are posted again at least this often, with ``endsAt`` four intervals ahead (as Prometheus
    #: does with its resend delay), so that Alertmanager never resolves them by its ``resolve_timeout``
    resend_interval: DurationMs = 60_000


class PagerdutyImage(_Model):
    """An image of a PagerDuty event."""

    src: str
    alt: str = ""
    href: str = ""


class PagerdutyLink(_Model):
    """A link of a PagerDuty event."""

    href: str
    text: str = ""


class PagerdutyConfig(IntegrationConfig):
    """PagerDuty: Events API v2 with ``routing_key`` (v1 with ``service_key``)."""

    secret_fields = (("routing_key", False), ("service_key", False))
    routing_key: SecretStr | None = None
    routing_key_file: Path | None = None
    service_key: SecretStr | None = None
    service_key_file: Path | None = None
    url: str | None = None  #: ``global.pagerduty_url`` when unset
    client: str | None = None  #: ``pagerduty.default.client`` (tunewatch) when unset
    client_url: str | None = None  #: ``pagerduty.default.clientURL`` (the external URL) when unset
    description: str | None = None  #: the notification title when unset
    details: dict[str, str] | None = None  #: firing/resolved alert lists when unset
    images: list[PagerdutyImage] = Field(default_factory=list)
    links: list[PagerdutyLink] = Field(default_factory=list)
    source: str | None = None  #: ``client`` when unset
    severity: str = "error"
    class_: str | None = Field(default=None, alias="class")
    component: str | None = None
    group: str | None = None

    @model_validator(mode="after")
    def _one_key(self) -> PagerdutyConfig:
        if (self.routing_key is None) == (self.service_key is None):
            raise ValueError("give exactly one of routing_key (Events API v2) or service_key (v1)")
        return self


class OpsgenieResponder(_Model):
    """An Opsgenie responder: one of ``id``, ``name``, ``username``, with ``type``."""

    id: str | None = None
    name: str | None = None
    username: str | None = None
    type: str


class OpsgenieConfig(IntegrationConfig):
    """Opsgenie Alert API v2 (``POST /v2/alerts``; resolved: ``POST /v2/alerts/<alias>/close``)."""

    secret_fields = (("api_key", False),)
    api_key: SecretStr | None = None  #: ``global.opsgenie_api_key`` when unset
    api_key_file: Path | None = None
    api_url: str | None = None  #: ``global.opsgenie_api_url`` when unset
    message: str | None = None
    description: str | None = None
    source: str | None = None
    details: dict[str, str] = Field(default_factory=dict)
    entity: str | None = None
    responders: list[OpsgenieResponder] = Field(default_factory=list)
    actions: str | None = None  #: comma-separated
    tags: str | None = None  #: comma-separated
    note: str | None = None
    priority: str | None = None  #: P1 .. P5 (after templating)
    update_alerts: bool = False


class MSTeamsConfig(IntegrationConfig):
    """Microsoft Teams incoming webhook (a ``MessageCard``), as Alertmanager 0.26+'s ``msteams_configs``."""

    secret_fields = (("webhook_url", True),)
    webhook_url: SecretStr | None = None
    webhook_url_file: Path | None = None
    title: str | None = None
    summary: str | None = None
    text: str | None = None


class DiscordConfig(IntegrationConfig):
    """Discord webhook (one embed), as Alertmanager 0.25+'s ``discord_configs``."""

    secret_fields = (("webhook_url", True),)
    webhook_url: SecretStr | None = None
    webhook_url_file: Path | None = None
    title: str | None = None
    message: str | None = None
    content: str | None = None  #: Alertmanager 0.28: plain message content beside the embed
    username: str | None = None  #: Alertmanager 0.28
    avatar_url: str | None = None  #: Alertmanager 0.28


class TelegramConfig(IntegrationConfig):
    """Telegram Bot API ``sendMessage``, as Alertmanager 0.24+'s ``telegram_configs``."""

    secret_fields = (("bot_token", True),)
    api_url: str | None = None  #: ``global.telegram_api_url`` when unset
    bot_token: SecretStr | None = None
    bot_token_file: Path | None = None
    chat_id: int
    message_thread_id: int | None = None
    message: str | None = None
    disable_notifications: bool = False
    parse_mode: str = "HTML"

    @field_validator("parse_mode")
    @classmethod
    def _mode(cls, v: str) -> str:
        if v not in ("", "HTML", "Markdown", "MarkdownV2"):
            raise ValueError("parse_mode must be HTML, Markdown, MarkdownV2 or empty")
        return v


#: receiver kinds of Alertmanager that tunewatch does not deliver to (accepted with a warning)
class ReceiverConfig(_Model):
    """A named receiver with its integrations."""

    name: str = Field(min_length=1)
    rate_limit: str | None = None  #: e.g. ``1/second``, ``30/minute`` (``limits`` syntax), per receiver (tunewatch)
    slack_configs: list[SlackConfig] = Field(default_factory=list)
    email_configs: list[EmailConfig] = Field(default_factory=list)
    webhook_configs: list[WebhookConfig] = Field(default_factory=list)
    pagerduty_configs: list[PagerdutyConfig] = Field(default_factory=list)
    opsgenie_configs: list[OpsgenieConfig] = Field(default_factory=list)
    msteams_configs: list[MSTeamsConfig] = Field(default_factory=list)
    discord_configs: list[DiscordConfig] = Field(default_factory=list)
    telegram_configs: list[TelegramConfig] = Field(default_factory=list)
    alertmanager_configs: list[AlertmanagerConfig] = Field(default_factory=list)  #: tunewatch
    # Alertmanager receiver kinds tunewatch does not deliver to: accepted with a warning
    victorops_configs: list[dict[str, Any]] = Field(default_factory=list)
    pushover_configs: list[dict[str, Any]] = Field(default_factory=list)
    sns_configs: list[dict[str, Any]] = Field(default_factory=list)
    wechat_configs: list[dict[str, Any]] = Field(default_factory=list)
    webex_configs: list[dict[str, Any]] = Field(default_factory=list)
    msteamsv2_configs: list[dict[str, Any]] = Field(default_factory=list)
    jira_configs: list[dict[str, Any]] = Field(default_factory=list)
    rocketchat_configs: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("rate_limit")
    @classmethod
    def _check_rate(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_rate_limit(value)
            except ValueError as exc:
                raise ValueError(f"bad rate_limit {value!r}: use e.g. 1/second or 30/minute") from exc
        return value


UNSUPPORTED_KINDS = ("victorops_configs", "pushover_configs", "sns_configs", "wechat_configs", "webex_configs",
                     "msteamsv2_configs", "jira_configs", "rocketchat_configs")  # fmt: skip
