"""What templates see: Go-like values (``KV``, time, lists with methods), errors, and how values print and
resolve ``.Field`` access."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from typing import Any

from tunewatch.errors import ConfigError


class TemplateError(ConfigError):
    """A template does not parse or refers to something that does not exist (message: ``source:line: reason``)."""

    def __init__(self, source: str, line: int, reason: str) -> None:
        super().__init__(f"{source}:{line}: {reason}")
        self.source, self.line, self.reason = source, line, reason


class TemplateRenderError(ValueError):
    """A template failed while rendering (e.g. a field of the wrong type)."""


class KV(dict[str, str]):
    """Alertmanager's ``KV`` (labels, annotations): a missing key reads as ``""``; methods as in Go."""

    _methods = ("SortedPairs", "Names", "Values", "Remove")

    def SortedPairs(self) -> PairList:
        """Key/value pairs sorted by key (``alertname`` first, as Alertmanager does)."""
        keys = sorted(self, key=lambda k: (k != "alertname", k))
        return PairList(Pair(k, self[k]) for k in keys)

    def Names(self) -> list[str]:
        """Sorted keys."""
        return sorted(self)

    def Values(self) -> list[str]:
        """Values in key order."""
        return [self[k] for k in sorted(self)]

    def Remove(self, keys: Iterable[str]) -> KV:
        """A copy without ``keys``."""
        drop = set(keys)
        return KV({k: v for k, v in self.items() if k not in drop})


class PairList(list["Pair"]):
    """``KV.SortedPairs``: a list with ``Names`` and ``Values`` methods."""

    def Names(self) -> list[str]:
        """The names, in order."""
        return [p.Name for p in self]

    def Values(self) -> list[str]:
        """The values, in order."""
        return [p.Value for p in self]


class GoTime:
    """A point in time as Go's ``time.Time`` shows it (``.StartsAt.Format "2006-01-02 15:04"``)."""

    _fields = ("Format", "Unix", "UTC", "String", "IsZero")
    _LAYOUT = (("2006", "%Y"), ("01", "%m"), ("02", "%d"), ("15", "%H"), ("04", "%M"), ("05", "%S"),
               ("Jan", "%b"), ("Mon", "%a"), ("MST", "%Z"), ("-0700", "%z"), ("Z07:00", "%z"))  # fmt: skip

    def __init__(self, value: dt.datetime) -> None:
        self.value = value

    @classmethod
    def parse(cls, text: str) -> GoTime:
        """From RFC 3339 text (the zero time ``0001-01-01T00:00:00Z`` included)."""
        try:
            return cls(dt.datetime.fromisoformat(text.replace("Z", "+00:00")))
        except ValueError:
            return cls(dt.datetime(1, 1, 1, tzinfo=dt.UTC))

    def Format(self, layout: str) -> str:
        """Go layout (reference time ``Mon Jan 2 15:04:05 MST 2006``) formatting, common elements only."""
        out = layout.replace("%", "%%")
        for go, py in self._LAYOUT:
            out = out.replace(go, py)
        return self.value.strftime(out)

    def Unix(self) -> int:
        """Seconds since the epoch."""
        return int(self.value.timestamp())

    def UTC(self) -> GoTime:
        """The same instant in UTC."""
        return GoTime(self.value.astimezone(dt.UTC))

    def IsZero(self) -> bool:
        """Whether this is Go's zero time (an alert without an end)."""
        return self.value.year == 1

    def String(self) -> str:
        """Go's default rendering, e.g. ``2026-01-05 00:00:00 +0000 UTC``."""
        return self.value.strftime("%Y-%m-%d %H:%M:%S %z ") + (self.value.tzname() or "UTC")

    def __str__(self) -> str:
        return self.String()


class TemplateData:
    """Base of objects templates may read: only the names in ``_fields`` are visible."""

    _fields: tuple[str, ...] = ()


class Pair(TemplateData):
    """One entry of ``KV.SortedPairs``."""

    _fields = ("Name", "Value")

    def __init__(self, name: str, value: str) -> None:
        self.Name, self.Value = name, value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pair) and (self.Name, self.Value) == (other.Name, other.Value)

    def __hash__(self) -> int:
        return hash((self.Name, self.Value))


class AlertList(list[Any], TemplateData):
    """``.Alerts``: a list with Alertmanager's ``Firing`` and ``Resolved`` methods."""

    _fields = ("Firing", "Resolved")

    def Firing(self) -> AlertList:
        """The firing alerts."""
        return AlertList(a for a in self if getattr(a, "Status", None) == "firing")

    def Resolved(self) -> AlertList:
        """The resolved alerts."""
        return AlertList(a for a in self if getattr(a, "Status", None) == "resolved")


def truth(v: Any) -> bool:
    """Go's truth: false, 0, nil, and empty strings, lists and maps are false."""
    if isinstance(v, GoTime):
        return True
    return bool(v)


def show(v: Any) -> str:
    """How Go prints a value."""
    if v is None:
        return "<no value>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and type(v) is not float:  # a number with its own display form (a rule's $value)
        return str(v)
    if isinstance(v, float):
        if math.isfinite(v) and v == int(v) and abs(v) < 1e21:
            return str(int(v)) if abs(v) < 1e21 else repr(v)
        return repr(v) if math.isfinite(v) else ("NaN" if v != v else ("+Inf" if v > 0 else "-Inf"))
    if isinstance(v, Mapping):
        return "map[" + " ".join(f"{k}:{show(v[k])}" for k in sorted(v)) + "]"
    if isinstance(v, list | tuple):
        return "[" + " ".join(show(x) for x in v) + "]"
    return str(v)


def get_field(obj: Any, name: str) -> Any:
    """``obj.Name`` as Go's template engine resolves it: a method or field of a known type, or a map key."""
    if isinstance(obj, KV) and name in KV._methods:
        return getattr(obj, name)()
    if isinstance(obj, PairList) and name in ("Names", "Values"):
        return getattr(obj, name)()
    if isinstance(obj, TemplateData | GoTime):
        if name not in type(obj)._fields:
            raise TemplateRenderError(f"can't evaluate field {name} in type {type(obj).__name__}")
        value = getattr(obj, name)
        return value() if callable(value) else value
    if isinstance(obj, Mapping):
        return obj.get(name, "")
    if obj is None:
        raise TemplateRenderError(f"nil pointer evaluating .{name}")
    raise TemplateRenderError(f"can't evaluate field {name} in type {type(obj).__name__}")


def call_method(obj: Any, name: str, *args: Any) -> Any:
    """``.X.Name arg...``: a method with arguments (``.Labels.Remove (stringSlice "a")``)."""
    allowed: tuple[str, ...] = ()
    if isinstance(obj, KV):
        allowed = KV._methods
    elif isinstance(obj, TemplateData | GoTime):
        allowed = type(obj)._fields
    if name not in allowed:
        raise TemplateRenderError(f"can't call method {name} on {type(obj).__name__}")
    method = getattr(obj, name)
    if not callable(method):
        raise TemplateRenderError(f"{name} is not a method")
    return method(*args)


def iter_items(v: Any) -> list[tuple[Any, Any]]:
    if v is None or v == "":
        return []
    if isinstance(v, Mapping):
        return [(k, v[k]) for k in sorted(v)]
    if isinstance(v, list | tuple):
        return list(enumerate(v))
    if isinstance(v, int) and not isinstance(v, bool):
        return [(i, i) for i in range(v)]
    raise TemplateRenderError(f"range can't iterate over {type(v).__name__}")
