"""Notification configuration: an Alertmanager 0.25–0.27 ``alertmanager.yml``, unchanged, plus tunewatch settings.

The Alertmanager file (see ``docs/notifications.md``)::

    global:         {resolve_timeout, smtp_*, slack_api_url[_file], pagerduty_url, opsgenie_api_url,
                     opsgenie_api_key[_file], telegram_api_url, http_config, ...}
    templates:      [file globs, relative to the config file]
    route:          {receiver, group_by, group_wait, group_interval, repeat_interval, matchers, match, match_re,
                     continue, mute_time_intervals, active_time_intervals, routes}
    receivers:      [{name, slack_configs, email_configs, webhook_configs, pagerduty_configs, opsgenie_configs,
                      msteams_configs, discord_configs, telegram_configs}]
    inhibit_rules:  [{source_matchers | source_match | source_match_re, target_matchers | target_match |
                      target_match_re, equal}]
    time_intervals: [{name, time_intervals: [{times, weekdays, days_of_month, months, years, location}]}]

Every key of Alertmanager's configuration is accepted: it works, or (receiver kinds tunewatch does not
deliver to, settings with no meaning here) it loads with a one-line warning naming it (``config.warnings``,
also logged). Unknown keys are errors, as in Alertmanager.

tunewatch's own settings live apart, so that ``amtool check-config`` accepts the Alertmanager file: in a
settings file (``<config stem>.tunewatch.yml`` next to the config, or the file named by
``TUNEWATCH_NOTIFY_SETTINGS``), or in a top-level ``tunewatch:`` section of the config (which amtool then
rejects)::

    external_url: https://tunewatch.example.com   # externalURL of webhook payloads, links
    http_timeout: 10s                             # default request timeout of receivers
    delivery: {attempts, retry_initial, retry_max, backoff_initial, backoff_max, max_age, workers}
    receivers:
      pager: {rate_limit: 30/minute}
      am: {alertmanager_configs: [{url: "http://127.0.0.1:9093", resend_interval: 1m}]}

The old places of these keys (top-level ``delivery``/``external_url``, ``global.http_timeout``, a receiver's
``rate_limit``/``alertmanager_configs``) still work, with a deprecation warning.

Secrets (webhook URLs, SMTP passwords) may be written inline, as ``${ENV_VAR}`` (any string value may use
environment variables) or read from a file with the ``*_file`` variant of the key. Secrets are held as
:class:`pydantic.SecretStr`, so they never appear in ``repr``, logs or error messages.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError

from tunewatch.durations import parse_duration_ms
from tunewatch.errors import ConfigError
from tunewatch.notify.httpconfig import HTTPConfig
from tunewatch.notify.matchers import Matcher, parse_matchers
from tunewatch.notify.receiver_config import (
    UNSUPPORTED_KINDS,
    ReceiverConfig,
    secret_or_file,
)
from tunewatch.notify.templates import NotifyTemplates
from tunewatch.notify.timeintervals import NamedTimeInterval

__all__ = ["DeliveryConfig", "GlobalConfig", "InhibitRuleConfig", "NotifyConfig", "ReceiverConfig", "RouteConfig",
           "TunewatchSettings", "load_config", "parse_duration_ms"]  # fmt: skip

log = logging.getLogger(__name__)
_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
SETTINGS_ENV = "TUNEWATCH_NOTIFY_SETTINGS"
EXTERNAL_URL_ENV = "TUNEWATCH_EXTERNAL_URL"

DurationMs = Annotated[int, BeforeValidator(parse_duration_ms)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class GlobalConfig(_Model):
    """Alertmanager's ``global`` section: defaults shared by receivers."""

    resolve_timeout: DurationMs | None = None  #: no effect: tunewatch resolves its alerts itself
    http_config: HTTPConfig | None = None
    smtp_smarthost: str | None = None
    smtp_from: str | None = None
    smtp_hello: str = "localhost"
    smtp_auth_username: str | None = None
    smtp_auth_password: SecretStr | None = None
    smtp_auth_password_file: Path | None = None
    smtp_auth_identity: str | None = None
    smtp_auth_secret: SecretStr | None = None
    smtp_require_tls: bool = True
    slack_api_url: SecretStr | None = None
    slack_api_url_file: Path | None = None
    pagerduty_url: str = "https://events.pagerduty.com/v2/enqueue"
    opsgenie_api_url: str = "https://api.opsgenie.com/"
    opsgenie_api_key: SecretStr | None = None
    opsgenie_api_key_file: Path | None = None
    telegram_api_url: str = "https://api.telegram.org"
    # used only by receiver kinds tunewatch does not deliver to (accepted with a warning when set)
    victorops_api_url: str | None = None
    victorops_api_key: SecretStr | None = None
    victorops_api_key_file: Path | None = None
    wechat_api_url: str | None = None
    wechat_api_secret: SecretStr | None = None
    wechat_api_corp_id: str | None = None
    webex_api_url: str | None = None

    @model_validator(mode="after")
    def _load_files(self) -> GlobalConfig:
        updates = secret_or_file(self, "smtp_auth_password", required=False)
        updates |= secret_or_file(self, "slack_api_url", required=False)
        updates |= secret_or_file(self, "opsgenie_api_key", required=False)
        return self.model_copy(update=updates) if updates else self


class DeliveryConfig(_Model):
    """How hard to try (tunewatch setting).

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


class ReceiverSettings(_Model):
    """tunewatch settings of one receiver."""

    rate_limit: str | None = None
    alertmanager_configs: list[dict[str, Any]] = Field(default_factory=list)


class TunewatchSettings(_Model):
    """Settings Alertmanager does not have (kept out of the Alertmanager file, see the module docs)."""

    external_url: str | None = None  #: ``externalURL`` of payloads; the served address when unset
    http_timeout: DurationMs = 10_000  #: default receiver timeout
    delivery: DeliveryConfig = DeliveryConfig()
    receivers: dict[str, ReceiverSettings] = Field(default_factory=dict)


class RouteConfig(_Model):
    """A node of the routing tree; unset fields are inherited from the parent (time intervals are not)."""

    receiver: str | None = None
    group_by: list[str] | None = None
    group_wait: DurationMs | None = None
    group_interval: DurationMs | None = None
    repeat_interval: DurationMs | None = None
    matchers: list[str] = Field(default_factory=list)
    match: dict[str, str] = Field(default_factory=dict)  #: deprecated Alertmanager form, equality
    match_re: dict[str, str] = Field(default_factory=dict)  #: deprecated Alertmanager form, regex
    continue_: bool = Field(default=False, alias="continue")
    mute_time_intervals: list[str] = Field(default_factory=list)
    active_time_intervals: list[str] = Field(default_factory=list)
    routes: list[RouteConfig] = Field(default_factory=list)

    @field_validator("matchers")
    @classmethod
    def _check_matchers(cls, value: list[str]) -> list[str]:
        _to_value_error(parse_matchers, value)
        return value

    @field_validator("match_re")
    @classmethod
    def _check_match_re(cls, value: dict[str, str]) -> dict[str, str]:
        for k, v in value.items():
            _to_value_error(lambda pair: Matcher.make(pair[0], "=~", pair[1]), (k, v))
        return value

    def parsed_matchers(self) -> tuple[Matcher, ...]:
        """All matchers of this node (``matchers`` plus the deprecated ``match``/``match_re``)."""
        return parse_matchers(self.matchers) + _legacy(self.match, self.match_re)


class InhibitRuleConfig(_Model):
    """Mute alerts matching the target matchers while an alert matching the source matchers fires.

    Both must agree on the labels listed in ``equal``. ``source_match``/``source_match_re`` and
    ``target_match``/``target_match_re`` are Alertmanager's older forms of the matchers.
    """

    source_matchers: list[str] = Field(default_factory=list)
    target_matchers: list[str] = Field(default_factory=list)
    source_match: dict[str, str] = Field(default_factory=dict)
    source_match_re: dict[str, str] = Field(default_factory=dict)
    target_match: dict[str, str] = Field(default_factory=dict)
    target_match_re: dict[str, str] = Field(default_factory=dict)
    equal: list[str] = Field(default_factory=list)

    @field_validator("source_matchers", "target_matchers")
    @classmethod
    def _check_matchers(cls, value: list[str]) -> list[str]:
        _to_value_error(parse_matchers, value)
        return value

    @model_validator(mode="after")
    def _check_re(self) -> InhibitRuleConfig:
        _to_value_error(lambda _: (self.sources(), self.targets()), None)
        return self

    def sources(self) -> tuple[Matcher, ...]:
        """Matchers an inhibiting (source) alert must satisfy."""
        return parse_matchers(self.source_matchers) + _legacy(self.source_match, self.source_match_re)

    def targets(self) -> tuple[Matcher, ...]:
        """Matchers an inhibited (target) alert must satisfy."""
        return parse_matchers(self.target_matchers) + _legacy(self.target_match, self.target_match_re)


def _legacy(match: dict[str, str], match_re: dict[str, str]) -> tuple[Matcher, ...]:
    return tuple([Matcher.make(k, "=", v) for k, v in match.items()] +
                 [Matcher.make(k, "=~", v) for k, v in match_re.items()])  # fmt: skip


class NotifyConfig(_Model):
    """The whole notification configuration (the Alertmanager file merged with the tunewatch settings)."""

    global_: GlobalConfig = Field(default_factory=GlobalConfig, alias="global")
    templates: list[str] = Field(default_factory=list)
    route: RouteConfig
    receivers: list[ReceiverConfig]
    inhibit_rules: list[InhibitRuleConfig] = Field(default_factory=list)
    time_intervals: list[NamedTimeInterval] = Field(default_factory=list)
    mute_time_intervals: list[NamedTimeInterval] = Field(default_factory=list)  #: Alertmanager's older name
    tunewatch: TunewatchSettings = TunewatchSettings()
    _warnings: list[str] = PrivateAttr(default_factory=list)
    _templates: Any = PrivateAttr(default=None)

    @property
    def delivery(self) -> DeliveryConfig:
        """The delivery settings (tunewatch)."""
        return self.tunewatch.delivery

    @property
    def external_url(self) -> str:
        """The external URL: the settings' ``external_url``, else the one the service passed (its address),
        else ``$TUNEWATCH_EXTERNAL_URL``, else ``http://localhost:8080``."""
        url = self.tunewatch.external_url or os.environ.get(EXTERNAL_URL_ENV) or "http://localhost:8080"
        return url.rstrip("/")

    @property
    def warnings(self) -> list[str]:
        """One line per accepted key that has no effect in tunewatch, or that moved."""
        return list(self._warnings)

    @property
    def notify_templates(self) -> Any:
        """The compiled templates (:class:`tunewatch.notify.templates.NotifyTemplates`)."""
        if self._templates is None:
            self._templates = NotifyTemplates.build(self.templates, self.receivers, Path.cwd(), None)
        return self._templates

    def with_external_url(self, url: str) -> NotifyConfig:
        """A copy whose external URL is ``url`` unless one is configured."""
        if self.tunewatch.external_url:
            return self
        copy = self.model_copy(update={"tunewatch": self.tunewatch.model_copy(update={"external_url": url})})
        copy._warnings, copy._templates = self._warnings, self._templates
        return copy

    def intervals(self) -> dict[str, NamedTimeInterval]:
        """Time intervals by name (``time_intervals`` and the older ``mute_time_intervals``)."""
        return {ti.name: ti for ti in [*self.mute_time_intervals, *self.time_intervals]}

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
        if self.route.mute_time_intervals or self.route.active_time_intervals:
            raise ValueError("route: the root route must not have mute_time_intervals or active_time_intervals")
        interval_names = [ti.name for ti in [*self.mute_time_intervals, *self.time_intervals]]
        dup_ti = sorted({n for n in interval_names if interval_names.count(n) > 1})
        if dup_ti:
            raise ValueError(f"time_intervals: duplicate name(s) {', '.join(dup_ti)}")
        self._check_route(self.route, "route", set(names), set(interval_names))
        for name in self.tunewatch.receivers:
            if name not in names:
                raise ValueError(f"tunewatch.receivers.{name}: no receiver {name!r} in the Alertmanager config")
        g = self.global_
        for i, receiver in enumerate(self.receivers):
            for j, email in enumerate(receiver.email_configs):
                where = f"receivers.{i}.email_configs.{j}"
                if (email.smarthost or g.smtp_smarthost) is None:
                    raise ValueError(f"{where}.smarthost: no smarthost and no global.smtp_smarthost")
                if (email.from_ or g.smtp_from) is None:
                    raise ValueError(f"{where}.from: no from and no global.smtp_from")
            for j, slack in enumerate(receiver.slack_configs):
                if slack.api_url is None and g.slack_api_url is None:
                    raise ValueError(f"receivers.{i}.slack_configs.{j}.api_url: no api_url and no global.slack_api_url")
            for j, og in enumerate(receiver.opsgenie_configs):
                if og.api_key is None and g.opsgenie_api_key is None:
                    raise ValueError(
                        f"receivers.{i}.opsgenie_configs.{j}.api_key: no api_key and no global.opsgenie_api_key"
                    )
        return self

    def _check_route(self, route: RouteConfig, where: str, names: set[str], intervals: set[str]) -> None:
        if route.receiver is not None and route.receiver not in names:
            raise ValueError(f"{where}.receiver: unknown receiver {route.receiver!r}")
        for key in ("mute_time_intervals", "active_time_intervals"):
            for name in getattr(route, key):
                if name not in intervals:
                    raise ValueError(f"{where}.{key}: no time interval named {name!r}")
        for i, child in enumerate(route.routes):
            self._check_route(child, f"{where}.routes.{i}", names, intervals)

    def receiver(self, name: str) -> ReceiverConfig | None:
        """The receiver called ``name``, if any."""
        return next((r for r in self.receivers if r.name == name), None)

    def http_timeout_s(self, timeout_ms: int | None) -> float:
        """A request timeout in seconds: the integration's, else the tunewatch settings' ``http_timeout``."""
        return (timeout_ms if timeout_ms is not None else self.tunewatch.http_timeout) / 1000

    @classmethod
    def from_yaml(cls, text: str, *, source: str = "<config>", settings: str | None = None,
                  settings_source: str = "<settings>", base_dir: Path | None = None) -> NotifyConfig:  # fmt: skip
        """Parse the Alertmanager YAML ``text`` (and the tunewatch ``settings`` YAML, if any), compile its
        templates; raise :class:`ConfigError` naming the file, the bad key and, for templates, the line."""
        raw = _mapping(text, source, "a mapping with route and receivers")
        extra = _mapping(settings, settings_source, "a mapping of tunewatch settings") if settings else {}
        raw = _expand_env(raw, "", source)
        extra = _expand_env(extra, "", settings_source)
        raw, warnings = _merge_settings(raw, extra)
        try:
            config = cls.model_validate(raw)
        except PydanticValidationError as exc:
            raise ConfigError(f"{source}: " + "; ".join(_describe(e) for e in exc.errors())) from None
        config._warnings = warnings + _no_effect_warnings(config)
        config._templates = NotifyTemplates.build(
            config.templates, config.receivers, base_dir or Path.cwd(), (text, source)
        )
        for w in config._warnings:
            log.warning("%s: %s", source, w)
        return config


def settings_path(config_path: Path) -> Path | None:
    """The tunewatch settings file for a config: ``$TUNEWATCH_NOTIFY_SETTINGS``, else ``<stem>.tunewatch.yml``
    (or ``.yaml``) beside it, if it exists."""
    env = os.environ.get(SETTINGS_ENV)
    if env:
        return Path(env)
    for suffix in (".yml", ".yaml"):
        candidate = config_path.with_name(f"{config_path.stem}.tunewatch{suffix}")
        if candidate.is_file():
            return candidate
    return None


def load_config(path: str | Path, *, settings: str | Path | None = None) -> NotifyConfig:
    """Read and validate an Alertmanager config file and its tunewatch settings (see :func:`settings_path`)."""
    p = Path(path)
    text = _read(p, "notification config")
    sp = Path(settings) if settings is not None else settings_path(p)
    extra = _read(sp, "tunewatch notification settings") if sp is not None else None
    return NotifyConfig.from_yaml(text, source=str(p), settings=extra, settings_source=str(sp), base_dir=p.parent)


def _read(p: Path, what: str) -> str:
    try:
        return p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {p}: {exc.strerror}") from exc


def _mapping(text: str | None, source: str, what: str) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(text or "")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{source}{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    if raw is None and what.endswith("settings"):
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected {what}")
    return raw


_DEPRECATED_TOP = ("delivery", "external_url")
_RECEIVER_SETTINGS = ("rate_limit", "alertmanager_configs")


def _merge_settings(raw: dict[str, Any], extra: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Move tunewatch settings (from the settings file, a ``tunewatch:`` section or their deprecated places)
    into ``raw["tunewatch"]``, and receiver settings into the receivers; return the deprecation warnings."""
    raw = dict(raw)
    warnings: list[str] = []
    tw = dict(raw.pop("tunewatch", None) or {})
    for key in _DEPRECATED_TOP:
        if key in raw:
            warnings.append(f"{key}: deprecated in the Alertmanager file; move it to the tunewatch settings")
            tw.setdefault(key, raw.pop(key))
    glob = raw.get("global")
    if isinstance(glob, dict) and "http_timeout" in glob:
        glob = dict(glob)
        warnings.append("global.http_timeout: deprecated; set http_timeout in the tunewatch settings")
        tw.setdefault("http_timeout", glob.pop("http_timeout"))
        raw["global"] = glob
    tw.update(extra)
    by_name = tw.get("receivers") or {}
    receivers = raw.get("receivers")
    if isinstance(receivers, list):
        out = []
        for r in receivers:
            if isinstance(r, dict):
                r = dict(r)
                for key in _RECEIVER_SETTINGS:
                    if key in r:
                        warnings.append(f"receivers.{r.get('name')}.{key}: deprecated in the Alertmanager file; "
                                        "move it to the tunewatch settings' receivers")  # fmt: skip
                own = by_name.get(r.get("name")) if isinstance(by_name, dict) else None
                if isinstance(own, dict):
                    r.update({k: v for k, v in own.items() if k in _RECEIVER_SETTINGS})
            out.append(r)
        raw["receivers"] = out
    raw["tunewatch"] = tw
    return raw, warnings


def _no_effect_warnings(config: NotifyConfig) -> list[str]:
    out = []
    g = config.global_
    if g.resolve_timeout is not None:
        out.append("global.resolve_timeout: accepted, no effect (tunewatch resolves its own alerts explicitly)")
    if g.smtp_auth_identity or g.smtp_auth_secret:
        out.append("global.smtp_auth_identity/smtp_auth_secret: accepted, not used (tunewatch authenticates with "
                   "smtp_auth_username and smtp_auth_password)")  # fmt: skip
    for key in ("victorops_api_url", "victorops_api_key", "wechat_api_url", "wechat_api_secret", "wechat_api_corp_id",
                "webex_api_url"):  # fmt: skip
        if getattr(g, key) is not None:
            out.append(f"global.{key}: accepted, not used (its receiver kind is not supported by tunewatch)")
    for r in config.receivers:
        for kind in UNSUPPORTED_KINDS:
            if getattr(r, kind):
                out.append(f"receivers.{r.name}.{kind}: not supported by tunewatch: nothing is sent to them")
        for j, e in enumerate(r.email_configs):
            if e.auth_identity or e.auth_secret:
                out.append(f"receivers.{r.name}.email_configs.{j}.auth_identity/auth_secret: accepted, not used")
        for j, o in enumerate(r.opsgenie_configs):
            if o.update_alerts:
                out.append(f"receivers.{r.name}.opsgenie_configs.{j}.update_alerts: not supported: alerts are "
                           "created, not updated")  # fmt: skip
    return out


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
