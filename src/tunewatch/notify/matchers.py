"""Label matchers in Alertmanager's syntax: ``name=value``, ``name!=value``, ``name=~regex``, ``name!~regex``.

Label names may be double-quoted to hold any UTF-8 text (``{"my label"="x"}``), as Alertmanager 0.27 allows.
Values may be double-quoted (``severity="critical"``), which allows commas and spaces; regexes are
anchored (they must match the whole value), as in Alertmanager. A missing label matches as the empty string.

>>> m = Matcher.parse('market=~"BR|AR"')
>>> m.matches({"market": "BR"}), m.matches({"market": "BRA"}), m.matches({})
(True, False, False)
>>> str(Matcher.parse("cdn!=edge-2"))
'cdn!="edge-2"'
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from tunewatch.errors import ConfigError

Op = Literal["=", "!=", "=~", "!~"]
_MATCHER_RE = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*|"(?:[^"\\]|\\.)*")\s*(=~|!~|!=|=)\s*(.*?)\s*$', re.DOTALL)
_LEGACY_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class Matcher:
    """One label matcher."""

    name: str
    op: Op
    value: str
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def parse(cls, text: str) -> Matcher:
        """Parse ``name<op>value``; raise :class:`ConfigError` with the offending text otherwise."""
        m = _MATCHER_RE.match(text)
        if not m:
            raise ConfigError(f"bad matcher {text!r}: expected name=value, name!=value, name=~regex or name!~regex")
        name, op, raw = m.group(1), m.group(2), m.group(3)
        if name.startswith('"'):  # a quoted UTF-8 label name (Alertmanager 0.27+)
            try:
                name = json.loads(name)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"bad matcher {text!r}: invalid quoted label name") from exc
            if not name:
                raise ConfigError(f"bad matcher {text!r}: empty label name")
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':
            try:
                raw = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"bad matcher {text!r}: invalid quoted value") from exc
        return cls.make(name, op, raw)  # type: ignore[arg-type]

    @classmethod
    def make(cls, name: str, op: Op, value: str) -> Matcher:
        """Build a matcher, compiling the regex of ``=~``/``!~`` (anchored)."""
        regex = None
        if op in ("=~", "!~"):
            try:
                regex = re.compile(f"(?:{value})", re.DOTALL)
            except re.error as exc:
                raise ConfigError(f"bad matcher regex {value!r} for label {name!r}: {exc}") from exc
        return cls(name, op, value, regex)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy this matcher."""
        value = labels.get(self.name, "")
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        assert self._regex is not None
        hit = self._regex.fullmatch(value) is not None
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        name = self.name if _LEGACY_NAME.match(self.name) else json.dumps(self.name, ensure_ascii=False)
        return f"{name}{self.op}{json.dumps(self.value, ensure_ascii=False)}"


def parse_matchers(items: Iterable[str]) -> tuple[Matcher, ...]:
    """Parse several matchers; a single string may also hold a ``{a="1", b=~"2"}`` list as Alertmanager allows."""
    out: list[Matcher] = []
    for item in items:
        text = item.strip()
        if text.startswith("{") and text.endswith("}"):
            out.extend(Matcher.parse(part) for part in _split_braced(text[1:-1]))
        else:
            out.append(Matcher.parse(text))
    return tuple(out)


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    """Whether every matcher accepts ``labels`` (true for no matchers)."""
    return all(m.matches(labels) for m in matchers)


def _split_braced(body: str) -> list[str]:
    parts: list[str] = []
    buf = ""
    in_quotes = escaped = False
    for ch in body:
        if ch == "," and not in_quotes:
            if buf.strip():
                parts.append(buf)
            buf = ""
            continue
        buf += ch
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            in_quotes = not in_quotes
    if buf.strip():
        parts.append(buf)
    return parts
