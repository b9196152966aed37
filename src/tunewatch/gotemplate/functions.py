"""The functions templates may call: Go's built-ins and Alertmanager's and Prometheus' additions."""

from __future__ import annotations

import datetime as dt
import html as html_lib
import json
import math
import re
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

from markupsafe import Markup

from tunewatch.gotemplate.values import KV, GoTime, TemplateRenderError, show, truth


def _num(v: Any) -> float:
    if isinstance(v, bool):
        raise TemplateRenderError("expected a number, got a boolean")
    try:
        return float(v)
    except (TypeError, ValueError):
        raise TemplateRenderError(f"expected a number, got {type(v).__name__}") from None


def humanize(v: Any) -> str:
    """Prometheus' ``humanize``: SI prefixes, 4 significant digits (``1234567`` → ``1.235M``)."""
    x = _num(v)
    if x == 0 or not math.isfinite(x):
        return f"{x:.4g}"
    if abs(x) >= 1:
        prefixes, scale = ["", "k", "M", "G", "T", "P", "E", "Z", "Y"], 1000.0
        i = 0
        while abs(x) >= scale and i < len(prefixes) - 1:
            x, i = x / scale, i + 1
        return f"{x:.4g}{prefixes[i]}"
    prefixes = ["", "m", "u", "n", "p", "f", "a", "z", "y"]
    i = 0
    while abs(x) < 1 and i < len(prefixes) - 1:
        x, i = x * 1000, i + 1
    return f"{x:.4g}{prefixes[i]}"


def humanize1024(v: Any) -> str:
    """Prometheus' ``humanize1024``: binary prefixes (``1048576`` → ``1Mi``)."""
    x = _num(v)
    if abs(x) <= 1 or not math.isfinite(x):
        return f"{x:.4g}"
    prefixes = ["", "ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"]
    i = 0
    while abs(x) >= 1024 and i < len(prefixes) - 1:
        x, i = x / 1024, i + 1
    return f"{x:.4g}{prefixes[i]}"


def humanize_duration(v: Any) -> str:
    """Prometheus' ``humanizeDuration`` of seconds (``90061`` → ``1d 1h 1m 1s``, ``0.25`` → ``250ms``)."""
    x = _num(v)
    if not math.isfinite(x):
        return f"{x:.4g}"
    if abs(x) < 1:
        if x == 0:
            return "0s"
        sign = "-" if x < 0 else ""
        x = abs(x)
        for unit, scale in (("ms", 1e3), ("us", 1e6), ("ns", 1e9)):
            if x * scale >= 1 or unit == "ns":
                return f"{sign}{x * scale:.4g}{unit}"
    sign = "-" if x < 0 else ""
    x = abs(x)
    days, rest = divmod(int(x), 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    secs = seconds + (x - int(x))
    if days:
        return f"{sign}{days}d {hours}h {minutes}m {int(secs)}s"
    if hours:
        return f"{sign}{hours}h {minutes}m {int(secs)}s"
    if minutes:
        return f"{sign}{minutes}m {int(secs)}s"
    return f"{sign}{secs:.4g}s"


def humanize_percentage(v: Any) -> str:
    """Prometheus' ``humanizePercentage`` of a ratio (``0.1234`` → ``12.34%``)."""
    return f"{_num(v) * 100:.4g}%"


def humanize_timestamp(v: Any) -> str:
    """Prometheus' ``humanizeTimestamp`` of epoch seconds."""
    x = _num(v)
    if not math.isfinite(x):
        return f"{x:.4g}"
    return str(GoTime(dt.datetime.fromtimestamp(x, dt.UTC)))


def go_title(s: Any) -> str:
    """Go's ``strings.Title``: the first letter of each word upper-cased, the rest kept."""
    return re.sub(r"(^|[^\w'])(\w)", lambda m: m.group(1) + m.group(2).upper(), str(s))


def go_join(sep: Any, items: Any) -> str:
    """Alertmanager's ``join sep list`` (in a pipeline: ``{{ .X.Values | join ", " }}``)."""
    if isinstance(sep, list | tuple) and not isinstance(items, list | tuple):
        sep, items = items, sep
    return str(sep).join(str(i) for i in items)


def re_replace_all(pattern: Any, repl: Any, text: Any) -> str:
    """``reReplaceAll regex replacement text`` with Go's ``$1``/``${1}`` references."""
    py_repl = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: "\\g<" + (m.group(1) or m.group(2)) + ">", str(repl))
    try:
        return re.sub(str(pattern), py_repl, str(text))
    except re.error as exc:
        raise TemplateRenderError(f"reReplaceAll: bad regex: {exc}") from None


def go_match(pattern: Any, text: Any) -> bool:
    """``match regex text``: whether the (unanchored) regex finds a match."""
    try:
        return re.search(str(pattern), str(text)) is not None
    except re.error as exc:
        raise TemplateRenderError(f"match: bad regex: {exc}") from None


_VERB = re.compile(r"%([-+# 0]*)(\d+|\*)?(?:\.(\d+))?([vsdfgeqxXtT%])")


def go_sprintf(fmt: Any, *args: Any) -> str:
    """Go's ``printf`` for the verbs templates use (``%s %v %d %f %.2f %g %e %q %x %t %%``)."""
    values = list(args)

    def one(m: re.Match[str]) -> str:
        flags, width, prec, verb = m.group(1), m.group(2) or "", m.group(3), m.group(4)
        if verb == "%":
            return "%"
        if not values:
            return f"%!{verb}(MISSING)"
        v = values.pop(0)
        spec = flags.replace("#", "") + width + (f".{prec}" if prec is not None else "")
        if verb in "vsT":
            text = show(v) if verb != "T" else type(v).__name__
            return format(text, spec.replace("0", "") if spec else "")
        if verb == "q":
            return json.dumps(show(v), ensure_ascii=False)
        if verb == "t":
            return "true" if v else "false"
        if verb in "dxX":
            return format(int(_num(v)), spec + verb.replace("d", "d"))
        return format(_num(v), spec + verb)

    return _VERB.sub(one, str(fmt))


def _eq(a: Any, *others: Any) -> bool:
    return any(a == b for b in others)


def _and(*args: Any) -> Any:
    for a in args:
        if not truth(a):
            return a
    return args[-1]


def _or(*args: Any) -> Any:
    for a in args:
        if truth(a):
            return a
    return args[-1]


def _index(v: Any, *keys: Any) -> Any:
    for k in keys:
        if isinstance(v, Mapping):
            v = v.get(k, "")
        else:
            try:
                v = v[int(k)]
            except (IndexError, TypeError, ValueError) as exc:
                raise TemplateRenderError(f"index: {exc}") from None
    return v


def _safe_html(s: Any) -> Markup:
    return Markup(str(s))


def _string_slice(*items: Any) -> list[str]:
    return [str(i) for i in items]


def _go_html(*items: Any) -> str:
    return html_lib.escape("".join(show(i) for i in items))


def _urlquery(*items: Any) -> str:
    return urllib.parse.quote_plus("".join(show(i) for i in items))


#: the functions a template may call: Go's built-ins plus Alertmanager's and Prometheus' additions
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "and": _and, "or": _or, "not": lambda a: not truth(a), "len": lambda v: len(v), "index": _index,
    "eq": _eq, "ne": lambda a, b: a != b, "lt": lambda a, b: a < b, "le": lambda a, b: a <= b,
    "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b,
    "print": lambda *a: "".join(show(x) for x in a), "println": lambda *a: " ".join(show(x) for x in a) + "\n",
    "printf": go_sprintf, "html": _go_html, "urlquery": _urlquery,
    "js": lambda *a: json.dumps("".join(map(str, a)))[1:-1],
    "toUpper": lambda s: str(s).upper(), "toLower": lambda s: str(s).lower(), "title": go_title,
    "trimSpace": lambda s: str(s).strip(), "join": go_join, "safeHtml": _safe_html, "reReplaceAll": re_replace_all,
    "match": go_match, "stringSlice": _string_slice, "humanize": humanize, "humanize1024": humanize1024,
    "humanizeDuration": humanize_duration, "humanizePercentage": humanize_percentage,
    "humanizeTimestamp": humanize_timestamp, "first": lambda v: v[0], "label": lambda name, s: KV(s).get(name, ""),
    "value": lambda s: s, "toTime": lambda v: GoTime(dt.datetime.fromtimestamp(_num(v), dt.UTC)),
}  # fmt: skip
