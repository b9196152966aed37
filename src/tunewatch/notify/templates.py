"""Notification templates: Alertmanager's ``templates`` files and the templated fields of receivers.

Templates are Go templates (see :mod:`tunewatch.gotemplate`) over Alertmanager's data: ``.Receiver``,
``.Status``, ``.Alerts`` (``.Alerts.Firing``, ``.Alerts.Resolved``; each with ``.Status``, ``.Labels``,
``.Annotations``, ``.StartsAt``, ``.EndsAt``, ``.GeneratorURL``, ``.Fingerprint``), ``.GroupLabels``,
``.CommonLabels``, ``.CommonAnnotations`` and ``.ExternalURL``. ``default.tmpl`` (beside this module)
defines the template names of Alertmanager's default templates (``__subject``, ``slack.default.title``,
``pagerduty.default.description``, ...), so configurations that use them work unchanged.

Everything compiles when the configuration loads: a syntax error, an unknown function or field, or an
undefined ``{{ template "name" }}`` fails the load with ``file:line``. A template that fails on one
notification's data (rare: e.g. ``humanize`` of a non-number) falls back to the integration's default text,
with a warning in the log, so that the page still goes out.
"""

from __future__ import annotations

import glob
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tunewatch.alert.rules import yaml_line
from tunewatch.errors import ConfigError
from tunewatch.gotemplate import KV, AlertList, GoTime, Template, TemplateData, TemplateLibrary, TemplateRenderError
from tunewatch.notify.outbox import Notification
from tunewatch.notify.receiver_config import TEMPLATED, ReceiverConfig

log = logging.getLogger(__name__)

DEFAULT_TEMPLATES = Path(__file__).with_name("default.tmpl")
DATA_FIELDS = ("Receiver", "Status", "Alerts", "GroupLabels", "CommonLabels", "CommonAnnotations", "ExternalURL",
               "GroupKey")  # fmt: skip
ALERT_FIELDS = ("Status", "Labels", "Annotations", "StartsAt", "EndsAt", "GeneratorURL", "Fingerprint")


class AlertData(TemplateData):
    """One alert as templates see it."""

    _fields = ALERT_FIELDS

    def __init__(self, alert: Mapping[str, Any]) -> None:
        self.Status = str(alert.get("status", "firing"))
        self.Labels = KV(alert.get("labels", {}))
        self.Annotations = KV(alert.get("annotations", {}))
        self.StartsAt = GoTime.parse(str(alert.get("startsAt", "")))
        self.EndsAt = GoTime.parse(str(alert.get("endsAt", "")))
        self.GeneratorURL = str(alert.get("generatorURL", ""))
        self.Fingerprint = str(alert.get("fingerprint", ""))


class NotificationData(TemplateData):
    """Alertmanager's template data for one notification."""

    _fields = DATA_FIELDS

    def __init__(self, *, receiver: str, group_key: str, group_labels: Mapping[str, str],
                 alerts: list[dict[str, Any]], external_url: str) -> None:  # fmt: skip
        views = AlertList(AlertData(a) for a in alerts)
        self.Receiver = receiver
        self.Status = "firing" if any(a.Status == "firing" for a in views) else "resolved"
        self.Alerts = views
        self.GroupLabels = KV(group_labels)
        self.CommonLabels = KV(_common([a.Labels for a in views]))
        self.CommonAnnotations = KV(_common([a.Annotations for a in views]))
        self.ExternalURL = external_url
        self.GroupKey = group_key


def notification_data(n: Notification, alerts: list[dict[str, Any]], external_url: str) -> NotificationData:
    """Template data for the ``alerts`` an integration sends of notification ``n``."""
    return NotificationData(receiver=n.receiver, group_key=n.group_key, group_labels=n.group_labels, alerts=alerts,
                            external_url=external_url)  # fmt: skip


def _common(maps: list[KV]) -> dict[str, str]:
    if not maps:
        return {}
    return {k: v for k, v in maps[0].items() if all(m.get(k) == v for m in maps[1:])}


def _library(html: bool) -> TemplateLibrary:
    return TemplateLibrary(html=html, root="data", known_fields={"data": DATA_FIELDS, "alert": ALERT_FIELDS},
                           range_types={"Alerts": "alert"})  # fmt: skip


#: Alertmanager's default template of each unset field, per integration kind
DEFAULTS: dict[str, dict[str, str]] = {
    "slack_configs": {"title": "slack.default.title", "title_link": "slack.default.titlelink",
                      "pretext": "slack.default.pretext", "text": "slack.default.text",
                      "fallback": "slack.default.fallback", "callback_id": "slack.default.callbackid",
                      "footer": "slack.default.footer", "username": "slack.default.username",
                      "icon_emoji": "slack.default.iconemoji", "icon_url": "slack.default.iconurl"},
    "pagerduty_configs": {"description": "pagerduty.default.description", "client": "pagerduty.default.client",
                          "client_url": "pagerduty.default.clientURL"},
    "opsgenie_configs": {"message": "opsgenie.default.message", "description": "opsgenie.default.description",
                         "source": "opsgenie.default.source"},
    "msteams_configs": {"title": "msteams.default.title", "summary": "msteams.default.summary",
                        "text": "msteams.default.text"},
    "discord_configs": {"title": "discord.default.title", "message": "discord.default.message"},
    "telegram_configs": {"message": "telegram.default.message"},
    "email_configs": {"headers.Subject": "email.default.subject"},
}  # fmt: skip


@dataclass(slots=True)
class FieldTemplates:
    """The compiled templated fields of one integration; unset ones render Alertmanager's default template."""

    where: str
    templates: dict[str, Template] = field(default_factory=dict)
    library: NotifyTemplates | None = None
    defaults: Mapping[str, str] = field(default_factory=dict)
    html: frozenset[str] = frozenset()  #: fields rendered with HTML escaping

    def has(self, name: str) -> bool:
        """Whether ``name`` was configured."""
        return name in self.templates

    def render(self, name: str, data: NotificationData, default: str = "") -> str:
        """The rendered field; when it is not configured or fails on this data, Alertmanager's default
        template for it, else ``default``."""
        tpl = self.templates.get(name)
        if tpl is not None:
            try:
                return tpl.render(data)
            except TemplateRenderError as exc:
                log.warning("%s.%s: template failed, using the default text: %s", self.where, name, exc)
        if self.library is not None and name in self.defaults:
            return self.library.render_named(self.defaults[name], data, html=name in self.html)
        return default


class NotifyTemplates:
    """Template files plus the compiled templated fields of every integration."""

    def __init__(self, text: TemplateLibrary, html: TemplateLibrary) -> None:
        self.text, self.html = text, html
        self.fields: dict[tuple[str, str, int], FieldTemplates] = {}
        self._named: dict[tuple[str, bool], Template] = {}

    def named(self, name: str, *, html: bool = False) -> Template:
        """A template that renders the defined template ``name`` (e.g. ``"pagerduty.default.description"``)."""
        key = (name, html)
        if key not in self._named:
            lib = self.html if html else self.text
            self._named[key] = lib.compile("{{ template " + json.dumps(name) + " . }}", f"<{name}>")
        return self._named[key]

    def render_named(self, name: str, data: Any, *, html: bool = False) -> str:
        """Render the defined template ``name`` with ``data`` ("" and a warning when it fails)."""
        try:
            return self.named(name, html=html).render(data)
        except TemplateRenderError as exc:
            log.warning("template %s failed: %s", name, exc)
            return ""

    def for_integration(self, receiver: str, kind: str, index: int) -> FieldTemplates:
        """The templated fields of ``receiver``'s ``kind`` (e.g. ``"pagerduty_configs"``) number ``index``."""
        found = self.fields.get((receiver, kind, index))
        if found is None:
            where = f"receivers.{receiver}.{kind}.{index}"
            found = FieldTemplates(where, library=self, defaults=DEFAULTS.get(kind, {}))
        return found

    @classmethod
    def build(
        cls,
        template_globs: Sequence[str],
        receivers: Sequence[ReceiverConfig],
        base_dir: Path,
        source: tuple[str, str] | None,
    ) -> NotifyTemplates:
        """Load ``default.tmpl`` and a configuration's ``templates`` globs (relative to ``base_dir``) and compile
        every templated field of its ``receivers``; raise :class:`ConfigError` with ``file:line`` on the first
        problem."""
        self = cls(_library(False), _library(True))
        files = [DEFAULT_TEMPLATES]
        for pattern in template_globs:
            full = pattern if Path(pattern).is_absolute() else str(base_dir / pattern)
            files += [Path(p) for p in sorted(glob.glob(full))]
        for path in files:
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"cannot read template file {path}: {exc.strerror}") from exc
            for lib in (self.text, self.html):
                lib.add_file(text, str(path))
        doc_text, src = source if source is not None else ("", "<config>")
        root = yaml.compose(doc_text) if doc_text else None
        lines = doc_text.splitlines()
        for i, r in enumerate(receivers):
            for kind, names in TEMPLATED.items():
                for j, integration in enumerate(getattr(r, kind)):
                    ft = FieldTemplates(f"receivers.{r.name}.{kind}.{j}", library=self, defaults=DEFAULTS.get(kind, {}))
                    for name, value in _fields(integration, names):
                        loc = ("receivers", i, kind, j, *name.split("."))
                        line = _line(root, lines, loc)
                        html = (kind == "email_configs" and name == "html") or (
                            kind == "telegram_configs" and getattr(integration, "parse_mode", "") == "HTML"
                        )
                        lib = self.html if html else self.text
                        ft.templates[name] = lib.compile(value, src, line=line, html=html)
                        if html:
                            ft.html |= {name}
                    if kind == "telegram_configs" and getattr(integration, "parse_mode", "") == "HTML":
                        ft.html |= {"message"}
                    self.fields[(r.name, kind, j)] = ft
        for lib in (self.text, self.html):
            lib.check_references()
        return self


def _fields(integration: Any, names: tuple[str, ...]) -> list[tuple[str, str]]:
    out = []
    for name in names:
        value = getattr(integration, "class_" if name == "class" else name, None)
        if isinstance(value, str):
            out.append((name, value))
    for group in ("details", "headers"):
        for key, value in (getattr(integration, group, None) or {}).items():
            if isinstance(value, str):
                out.append((f"{group}.{key}", value))
    for k, f in enumerate(getattr(integration, "fields", None) or []):
        out += [(f"fields.{k}.title", f.title), (f"fields.{k}.value", f.value)]
    return out


def _line(root: yaml.Node | None, lines: list[str], loc: tuple[Any, ...]) -> int:
    line = yaml_line(root, loc) if root is not None else None
    if line is None:
        return 1
    text = lines[line - 1].rstrip() if 0 < line <= len(lines) else ""
    return line + 1 if text.endswith(("|", ">", "|-", ">-", "|+", ">+")) else line  # block scalar: starts below
