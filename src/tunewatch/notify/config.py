"""Notification configuration: an Alertmanager-shaped YAML file parsed into typed, validated models.

Shape (see ``docs/notifications.md``)::

    global:       {smtp_smarthost, smtp_from, smtp_auth_username, smtp_auth_password[_file], slack_api_url[_file]}
    route:        {receiver, group_by, group_wait, group_interval, repeat_interval, matchers, continue, routes}
    receivers:    [{name, rate_limit, slack_configs, email_configs, webhook_configs, alertmanager_configs}]
                  (alertmanager_configs: [{url, resend_interval (1m: firing alerts re-posted, endsAt 4 ahead)}])
    inhibit_rules: [{source_matchers, target_matchers, equal}]
    delivery:     {attempts, retry_initial, retry_max, backoff_initial, backoff_max, max_age, workers}

Secrets (webhook URLs, SMTP passwords) may be written inline, as ``${ENV_VAR}`` (any string value may use
environment variables) or read from a file with the ``*_file`` variant of the key. Secrets are held as
:class:`pydantic.SecretStr`, so they never appear in ``repr``, logs or error messages.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any

import yaml
from limits import parse as parse_rate_limit
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from tunewatch.durations import parse_duration_ms
from tunewatch.errors import ConfigError
from tunewatch.notify.matchers import Matcher, parse_matchers

_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


DurationMs = Annotated[int, BeforeValidator(parse_duration_ms)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _read_secret(field: str, path: Path | None) -> SecretStr | None:
    if path is None:
        return None
    try:
        return SecretStr(Path(path).read_text(encoding="utf-8").strip())
    except OSError as exc:
        raise ValueError(f"{field}_file: cannot read {path}: {exc.strerror}") from exc


def _secret_or_file(model: BaseModel, field: str, *, required: bool) -> dict[str, Any]:
    value = getattr(model, field)
    path = getattr(model, f"{field}_file")
    if value is not None and path is not None:
        raise ValueError(f"give either {field} or {field}_file, not both")
    if value is None and path is not None:
        return {field: _read_secret(field, path)}
    if value is None and required:
        raise ValueError(f"{field} (or {field}_file) is required")
    return {}


class GlobalConfig(_Model):
    """Defaults shared by receivers, as Alertmanager's ``global`` section."""

    smtp_smarthost: str | None = None
    smtp_from: str | None = None
    smtp_hello: str = "localhost"
    smtp_auth_username: str | None = None
    smtp_auth_password: SecretStr | None = None
    smtp_auth_password_file: Path | None = None
    smtp_require_tls: bool = True
    slack_api_url: SecretStr | None = None
    slack_api_url_file: Path | None = None
    http_timeout: DurationMs = 10_000  #: default receiver timeout (tunewatch)

    @model_validator(mode="after")
    def _load_files(self) -> GlobalConfig:
        updates = _secret_or_file(self, "smtp_auth_password", required=False)
        updates |= _secret_or_file(self, "slack_api_url", required=False)
        return self.model_copy(update=updates) if updates else self


class DeliveryConfig(_Model):
    """How hard to try (tunewatch-specific section).

    A delivery round makes up to ``attempts`` tries ``retry_initial`` .. ``retry_max`` apart (exponential with
    jitter); when a round fails the notification stays in the outbox and the next round starts after an
    exponential backoff with jitter from ``backoff_initial`` to ``backoff_max``. After ``max_age`` it is given up.
    """

    attempts: int = Field(default=3, ge=1, le=20)
    retry_initial: DurationMs = 500
    retry_max: DurationMs = 5_000
    backoff_initial: DurationMs = 10_000
    backoff_max: DurationMs = 600_000
    max_age: DurationMs = 86_400_000
    workers: int = Field(default=4, ge=1, le=64)


class TLSConfig(_Model):
    """TLS settings for SMTP."""

    ca_file: Path | None = None
    insecure_skip_verify: bool = False


class IntegrationConfig(_Model):
    """Settings every integration has."""

    send_resolved: bool = True
    timeout: DurationMs | None = None  #: per-request timeout; ``global.http_timeout`` when unset


class SlackConfig(IntegrationConfig):
    """Slack incoming webhook; the message is a Block Kit message."""

    send_resolved: bool = False
    api_url: SecretStr | None = None
    api_url_file: Path | None = None
    channel: str | None = None
    username: str | None = None
    icon_emoji: str | None = None

    @model_validator(mode="after")
    def _load_files(self) -> SlackConfig:
        updates = _secret_or_file(self, "api_url", required=False)
        return self.model_copy(update=updates) if updates else self


class EmailConfig(IntegrationConfig):
    """SMTP delivery (STARTTLS unless ``require_tls: false``; implicit TLS on port 465)."""

    send_resolved: bool = False
    to: str
    from_: str | None = Field(default=None, alias="from")
    smarthost: str | None = None
    hello: str | None = None
    auth_username: str | None = None
    auth_password: SecretStr | None = None
    auth_password_file: Path | None = None
    require_tls: bool | None = None
    tls_config: TLSConfig = TLSConfig()
    headers: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _load_files(self) -> EmailConfig:
        updates = _secret_or_file(self, "auth_password", required=False)
        return self.model_copy(update=updates) if updates else self

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

    url: SecretStr | None = None
    url_file: Path | None = None
    max_alerts: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _load_files(self) -> WebhookConfig:
        updates = _secret_or_file(self, "url", required=True)
        return self.model_copy(update=updates) if updates else self


class AlertmanagerConfig(IntegrationConfig):
    """Forward alerts to a real Alertmanager through ``POST /api/v2/alerts`` (tunewatch-specific)."""

    url: SecretStr | None = None  #: base URL, e.g. ``http://127.0.0.1:9093``
    url_file: Path | None = None
    #: firing alerts are posted again at least this often, with ``endsAt`` four intervals ahead (as Prometheus
    #: does with its resend delay), so that Alertmanager never resolves them by its ``resolve_timeout``
    resend_interval: DurationMs = 60_000

    @model_validator(mode="after")
    def _load_files(self) -> AlertmanagerConfig:
        updates = _secret_or_file(self, "url", required=True)
        return self.model_copy(update=updates) if updates else self


class ReceiverConfig(_Model):
    """A named receiver with its integrations."""

    name: str = Field(min_length=1)
    rate_limit: str | None = None  #: e.g. ``1/second``, ``30/minute`` (``limits`` syntax), per receiver
    slack_configs: list[SlackConfig] = Field(default_factory=list)
    email_configs: list[EmailConfig] = Field(default_factory=list)
    webhook_configs: list[WebhookConfig] = Field(default_factory=list)
    alertmanager_configs: list[AlertmanagerConfig] = Field(default_factory=list)

    @field_validator("rate_limit")
    @classmethod
    def _check_rate(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_rate_limit(value)
            except ValueError as exc:
                raise ValueError(f"bad rate_limit {value!r}: use e.g. 1/second or 30/minute") from exc
        return value


class RouteConfig(_Model):
    """A node of the routing tree; unset fields are inherited from the parent."""

    receiver: str | None = None
    group_by: list[str] | None = None
    group_wait: DurationMs | None = None
    group_interval: DurationMs | None = None
    repeat_interval: DurationMs | None = None
    matchers: list[str] = Field(default_factory=list)
    match: dict[str, str] = Field(default_factory=dict)  #: deprecated Alertmanager form, equality
    match_re: dict[str, str] = Field(default_factory=dict)  #: deprecated Alertmanager form, regex
    continue_: bool = Field(default=False, alias="continue")
    routes: list[RouteConfig] = Field(default_factory=list)

    @field_validator("matchers")
    @classmethod
    def _check_matchers(cls, value: list[str]) -> list[str]:
        _to_value_error(parse_matchers, value)
        return value

    def parsed_matchers(self) -> tuple[Matcher, ...]:
        """All matchers of this node (``matchers`` plus the deprecated ``match``/``match_re``)."""
        out = list(parse_matchers(self.matchers))
        out += [Matcher.make(k, "=", v) for k, v in self.match.items()]
        out += [Matcher.make(k, "=~", v) for k, v in self.match_re.items()]
        return tuple(out)


class InhibitRuleConfig(_Model):
    """Mute alerts matching ``target_matchers`` while an alert matching ``source_matchers`` fires.

    Both must agree on the labels listed in ``equal``.
    """

    source_matchers: list[str] = Field(default_factory=list)
    target_matchers: list[str] = Field(default_factory=list)
    equal: list[str] = Field(default_factory=list)

    @field_validator("source_matchers", "target_matchers")
    @classmethod
    def _check_matchers(cls, value: list[str]) -> list[str]:
        _to_value_error(parse_matchers, value)
        return value


class NotifyConfig(_Model):
    """The whole notification configuration."""

    global_: GlobalConfig = Field(default_factory=GlobalConfig, alias="global")
    route: RouteConfig
    receivers: list[ReceiverConfig]
    inhibit_rules: list[InhibitRuleConfig] = Field(default_factory=list)
    delivery: DeliveryConfig = DeliveryConfig()
    external_url: str = "http://localhost:8080"  #: shown as ``externalURL`` in webhook payloads

    @model_validator(mode="after")
    def _check_tree(self) -> NotifyConfig:
        names = [r.name for r in self.receivers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"receivers: duplicate receiver name(s) {', '.join(dupes)}")
        if self.route.receiver is None:
            raise ValueError("route.receiver: the root route must name a receiver")
        if self.route.parsed_matchers():
            raise ValueError("route.matchers: the root route must not have matchers (it matches every alert)")
        self._check_route(self.route, "route", set(names))
        for i, receiver in enumerate(self.receivers):
            for j, email in enumerate(receiver.email_configs):
                where = f"receivers.{i}.email_configs.{j}"
                if (email.smarthost or self.global_.smtp_smarthost) is None:
                    raise ValueError(f"{where}.smarthost: no smarthost and no global.smtp_smarthost")
                if (email.from_ or self.global_.smtp_from) is None:
                    raise ValueError(f"{where}.from: no from and no global.smtp_from")
            for j, slack in enumerate(receiver.slack_configs):
                if slack.api_url is None and slack.api_url_file is None and self.global_.slack_api_url is None:
                    raise ValueError(f"receivers.{i}.slack_configs.{j}.api_url: no api_url and no global.slack_api_url")
        return self

    def _check_route(self, route: RouteConfig, where: str, names: set[str]) -> None:
        if route.receiver is not None and route.receiver not in names:
            raise ValueError(f"{where}.receiver: unknown receiver {route.receiver!r}")
        for i, child in enumerate(route.routes):
            self._check_route(child, f"{where}.routes.{i}", names)

    def receiver(self, name: str) -> ReceiverConfig | None:
        """The receiver called ``name``, if any."""
        return next((r for r in self.receivers if r.name == name), None)

    @classmethod
    def from_yaml(cls, text: str, *, source: str = "<config>") -> NotifyConfig:
        """Parse YAML text; raise :class:`ConfigError` naming the bad key."""
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: expected a mapping with route and receivers")
        raw = _expand_env(raw, "", source)
        try:
            return cls.model_validate(raw)
        except PydanticValidationError as exc:
            raise ConfigError(f"{source}: " + "; ".join(_describe(e) for e in exc.errors())) from None


def load_config(path: str | Path) -> NotifyConfig:
    """Read and validate a notification config file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read notification config {p}: {exc.strerror}") from exc
    return NotifyConfig.from_yaml(text, source=str(p))


def _to_value_error(fn: Any, value: Any) -> Any:
    try:
        return fn(value)
    except ConfigError as exc:
        raise ValueError(str(exc)) from exc


def _describe(error: Any) -> str:
    loc = ".".join(str(p) for p in error.get("loc", ()) if p not in ("function-after[_check_tree()]",))
    msg = str(error.get("msg", "invalid"))
    msg = msg.removeprefix("Value error, ")
    if error.get("type") == "extra_forbidden":
        msg = "unknown key"
    # never echo input values: they may be secrets
    return f"{loc}: {msg}" if loc else msg


def _expand_env(node: Any, where: str, source: str) -> Any:
    if isinstance(node, dict):
        return {k: _expand_env(v, f"{where}.{k}" if where else str(k), source) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand_env(v, f"{where}.{i}", source) for i, v in enumerate(node)]
    if isinstance(node, str) and "${" in node:

        def sub(m: re.Match[str]) -> str:
            value = os.environ.get(m.group(1))
            if value is None:
                raise ConfigError(f"{source}: {where}: environment variable {m.group(1)} is not set")
            return value

        return _ENV_RE.sub(sub, node)
    return node
