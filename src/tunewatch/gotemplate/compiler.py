"""The compiler: Go template syntax translated to Jinja2 source, rendered in Jinja2's sandbox."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup

from tunewatch.gotemplate.functions import FUNCTIONS
from tunewatch.gotemplate.values import (
    TemplateError,
    TemplateRenderError,
    call_method,
    get_field,
    iter_items,
    show,
    truth,
)

# an action: a comment, or text in which quoted strings may hold "}}"
_ACTION = re.compile(
    r"""\{\{(-\s)?(\s*/\*.*?\*/\s*|(?:"(?:[^"\\\n]|\\.)*"|`[^`]*`|'(?:[^'\\]|\\.)*'|[^"`'}]|\}(?!\}))*?)(\s-)?\}\}""",
    re.DOTALL,
)
_TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>"(?:[^"\\\n]|\\.)*") | (?P<raw>`[^`]*`) | (?P<chr>'(?:[^'\\]|\\.)+') |
      (?P<num>[-+]?(?:0[xX][0-9a-fA-F]+|\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)) |
      (?P<field>(?:\.[A-Za-z_]\w*)+|\.) | (?P<var>\$\w*(?:\.[A-Za-z_]\w*)*) |
      (?P<decl>:=) | (?P<assign>=) | (?P<op>[|(),]) | (?P<ident>[A-Za-z_]\w*)
    )(?P<after>(?:\.[A-Za-z_]\w*)*)""",
    re.VERBOSE,
)


@dataclass(slots=True)
class _Tok:
    kind: str
    text: str
    after: str = ""


@dataclass(slots=True)
class _Scope:
    names: list[set[str]] = field(default_factory=lambda: [{"$"}])
    dot: list[str | None] = field(default_factory=list)

    def declared(self, name: str) -> bool:
        return any(name in s for s in self.names)


class _Compiler:
    """Translate one Go template (and its ``define`` blocks) to Jinja2 source."""

    def __init__(self, lib: TemplateLibrary, source: str, text: str, line0: int, root: str | None,
                 variables: Iterable[str]) -> None:  # fmt: skip
        self.lib, self.source, self.text, self.line0 = lib, source, text, line0
        self.consts: list[Any] = []
        self.scope = _Scope()
        self.scope.names[0].update(variables)
        self.scope.dot.append(root)
        self.root = root
        self.line = line0
        self.uid = 0
        self.defines: dict[str, str] = {}

    def err(self, msg: str) -> TemplateError:
        return TemplateError(self.source, self.line, msg)

    def const(self, value: Any) -> str:
        self.consts.append(value)
        return f"K[{len(self.consts) - 1}]"

    # actions -------------------------------------------------------------------------------------------
    def compile(self) -> str:
        pieces = self._split()
        body, pos = self._block(pieces, 0, top=True)
        if pos != len(pieces):
            self.line = pieces[pos][2]
            raise self.err(f"unexpected {{{{{pieces[pos][1].split()[0]}}}}}")
        return body

    def _split(self) -> list[tuple[str, str, int]]:
        out: list[tuple[str, str, int]] = []
        pos = 0
        text = self.text
        for m in _ACTION.finditer(text):
            chunk = text[pos : m.start()]
            if m.group(1):
                chunk = chunk.rstrip()
            if out and out[-1][0] == "trim":
                chunk = chunk.lstrip()
                out.pop()
            line = self.line0 + text.count("\n", 0, m.start())
            if chunk:
                out.append(("text", chunk, line))
            inner = m.group(2)
            if inner.strip().startswith("/*"):
                if not inner.strip().endswith("*/"):
                    self.line = line
                    raise self.err("unclosed comment")
            else:
                out.append(("action", inner.strip(), line))
            if m.group(3):
                out.append(("trim", "", line))
            pos = m.end()
        rest = text[pos:]
        if out and out[-1][0] == "trim":
            rest = rest.lstrip()
            out.pop()
        if "{{" in rest:
            self.line = self.line0 + text.count("\n", 0, pos + rest.index("{{"))
            raise self.err("unclosed action")
        if rest:
            out.append(("text", rest, self.line0 + text.count("\n", 0, pos)))
        return out

    def _block(self, pieces: list[tuple[str, str, int]], pos: int, *, top: bool = False) -> tuple[str, int]:
        """Compile until an ``end``/``else`` (left unconsumed) or the end; return (jinja, position)."""
        out: list[str] = []
        while pos < len(pieces):
            kind, text, self.line = pieces[pos]
            if kind == "text":
                out.append("{{ " + self.const(text) + "|safe }}")
                pos += 1
                continue
            word = text.split(None, 1)[0] if text else ""
            rest = text[len(word) :].strip()
            if word in ("end", "else"):
                if top:
                    raise self.err(f"unexpected {{{{{word}}}}}")
                return "".join(out), pos
            pos += 1
            if word == "if":
                out.append(self._if(rest, pieces, pos))
                pos = self._end_pos
            elif word == "range":
                out.append(self._range(rest, pieces, pos))
                pos = self._end_pos
            elif word == "with":
                out.append(self._with(rest, pieces, pos))
                pos = self._end_pos
            elif word in ("define", "block"):
                if not top and word == "define":
                    raise self.err("define is only allowed at the top level")
                out.append(self._define(word, rest, pieces, pos))
                pos = self._end_pos
            elif word == "template":
                out.append(self._template(rest))
            elif word in ("break", "continue"):
                out.append("{% " + word + " %}")
            elif not text:
                raise self.err("empty action")
            else:
                out.append(self._action(text))
        if not top:
            raise self.err("unexpected end of template: missing {{end}}")
        return "".join(out), pos

    def _expect_end(self, pieces: list[tuple[str, str, int]], pos: int, what: str) -> tuple[str, str | None, int]:
        """Body up to ``else``/``end``: (body, else text or None, position after that piece)."""
        self.scope.names.append(set())
        body, pos = self._block(pieces, pos)
        self.scope.names.pop()
        if pos >= len(pieces):
            raise self.err(f"missing {{{{end}}}} for {what}")
        _, text, self.line = pieces[pos]
        if text == "end":
            return body, None, pos + 1
        return body, text[4:].strip(), pos + 1

    _end_pos = 0

    def _if(self, cond: str, pieces: list[tuple[str, str, int]], pos: int) -> str:
        test = self._pipeline(cond)
        body, rest, pos = self._expect_end(pieces, pos, "if")
        out = "{% if T(" + test + ") %}" + body
        while rest is not None:
            if rest.startswith("if "):
                test = self._pipeline(rest[3:])
                body, rest, pos = self._expect_end(pieces, pos, "else if")
                out += "{% elif T(" + test + ") %}" + body
            elif rest.startswith("with "):
                raise self.err("else with is not supported; nest a with in else")
            elif rest == "":
                body, rest2, pos = self._expect_end(pieces, pos, "else")
                if rest2 is not None:
                    raise self.err("else after else")
                out += "{% else %}" + body
                rest = None
            else:
                raise self.err(f"unexpected else {rest!r}")
        self._end_pos = pos
        return out + "{% endif %}"

    def _decl(self, text: str) -> tuple[list[str], str]:
        m = re.match(r"^\s*(\$\w*)\s*(?:,\s*(\$\w*)\s*)?:=\s*(.*)$", text, re.DOTALL)
        if not m:
            return [], text
        return [v for v in (m.group(1), m.group(2)) if v], m.group(3)

    def _range(self, text: str, pieces: list[tuple[str, str, int]], pos: int) -> str:
        names, expr = self._decl(text)
        src = self._pipeline(expr)
        self.uid += 1
        k, v = f"_k{self.uid}", f"_v{self.uid}"
        dot_type = self._range_type(expr)
        self.scope.dot.append(dot_type)
        self.scope.names.append(set(names))
        sets = "{% set D = " + v + " %}"
        if len(names) == 1:
            sets += "{% set " + self._var(names[0]) + " = " + v + " %}"
        elif len(names) == 2:
            sets += "{% set " + self._var(names[0]) + " = " + k + " %}{% set " + self._var(names[1]) + " = " + v + " %}"
        body, rest, pos = self._expect_end(pieces, pos, "range")
        self.scope.names.pop()
        self.scope.dot.pop()
        out = "{% for " + k + ", " + v + " in I(" + src + ") %}" + sets + body
        if rest is not None:
            if rest:
                raise self.err(f"unexpected else {rest!r} in range")
            body2, rest2, pos = self._expect_end(pieces, pos, "range else")
            if rest2 is not None:
                raise self.err("else after else")
            out += "{% else %}" + body2
        self._end_pos = pos
        return out + "{% endfor %}"

    def _with(self, text: str, pieces: list[tuple[str, str, int]], pos: int) -> str:
        names, expr = self._decl(text)
        src = self._pipeline(expr)
        self.uid += 1
        w = f"_w{self.uid}"
        self.scope.dot.append(None)
        self.scope.names.append(set(names))
        sets = "".join("{% set " + self._var(n) + " = " + w + " %}" for n in names[:1])
        body, rest, pos = self._expect_end(pieces, pos, "with")
        self.scope.names.pop()
        self.scope.dot.pop()
        out = "{% set " + w + " = " + src + " %}{% if T(" + w + ") %}{% set D = " + w + " %}" + sets + body
        if rest is not None:
            if rest:
                raise self.err(f"unexpected else {rest!r} in with")
            body2, _, pos = self._expect_end(pieces, pos, "with else")
            out += "{% else %}" + body2
        self._end_pos = pos
        # restore dot after the with (Jinja's set inside if leaks into the enclosing scope)
        self.uid += 1
        saved = f"_d{self.uid}"
        self._end_pos = pos
        return "{% set " + saved + " = D %}" + out + "{% endif %}{% set D = " + saved + " %}"

    def _define(self, word: str, text: str, pieces: list[tuple[str, str, int]], pos: int) -> str:
        m = re.match(r'^("(?:[^"\\]|\\.)*"|`[^`]*`)\s*(.*)$', text, re.DOTALL)
        if not m:
            raise self.err(f"{word} needs a quoted template name")
        name = self._string(m.group(1))
        saved_scope, saved_dot = self.scope.names, self.scope.dot
        self.scope.names, self.scope.dot = [{"$"}], [None]
        body, rest, pos = self._expect_end(pieces, pos, f"{word} {name!r}")
        self.scope.names, self.scope.dot = saved_scope, saved_dot
        if rest is not None:
            raise self.err(f"else in {word}")
        self.defines[name] = body
        self._end_pos = pos
        if word == "block":
            return self._template(text)
        return ""

    def _template(self, text: str) -> str:
        m = re.match(r'^("(?:[^"\\]|\\.)*"|`[^`]*`)\s*(.*)$', text, re.DOTALL)
        if not m:
            raise self.err("template needs a quoted template name")
        name = self._string(m.group(1))
        arg = self._pipeline(m.group(2)) if m.group(2).strip() else "none"
        self.lib.referenced.append((name, self.source, self.line))
        return "{{ TPL(" + self.const(name) + ", " + arg + ") }}"

    def _action(self, text: str) -> str:
        names, expr = self._decl(text)
        if names:
            src = self._pipeline(expr)
            self.scope.names[-1].update(names)
            return "{% set " + self._var(names[0]) + " = " + src + " %}"
        m = re.match(r"^\s*(\$\w*)\s*=(?!=)\s*(.*)$", text, re.DOTALL)
        if m:
            if not self.scope.declared(m.group(1)):
                raise self.err(f"undefined variable {m.group(1)!r}")
            return "{% set " + self._var(m.group(1)) + " = " + self._pipeline(m.group(2)) + " %}"
        return "{{ S(" + self._pipeline(text) + ") }}"

    # expressions ---------------------------------------------------------------------------------------
    def _var(self, name: str) -> str:
        return "V_" + name[1:] if name != "$" else "V__root"

    def _string(self, lit: str) -> str:
        if lit.startswith("`"):
            return lit[1:-1]
        try:
            return str(json.loads(lit))
        except json.JSONDecodeError:
            try:
                return str(lit[1:-1].encode("utf-8").decode("unicode_escape"))
            except UnicodeDecodeError as exc:
                raise self.err(f"bad string literal {lit}") from exc

    def _tokens(self, text: str) -> list[_Tok]:
        out: list[_Tok] = []
        pos = 0
        text = text.rstrip()
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m or m.end() == pos:
                raise self.err(f"unexpected {text[pos:].strip()[:20]!r} in action")
            kind = next(k for k in ("str", "raw", "chr", "num", "field", "var", "decl", "assign", "op", "ident")
                        if m.group(k) is not None)  # fmt: skip
            out.append(_Tok(kind, m.group(kind), m.group("after")))
            pos = m.end()
        return out

    def _pipeline(self, text: str) -> str:
        toks = self._tokens(text)
        if not toks:
            raise self.err("missing value")
        expr, pos = self._pipe(toks, 0)
        if pos != len(toks):
            raise self.err(f"unexpected {toks[pos].text!r}")
        return expr

    def _pipe(self, toks: list[_Tok], pos: int) -> tuple[str, int]:
        expr, pos = self._command(toks, pos, None)
        while pos < len(toks) and toks[pos].text == "|":
            expr, pos = self._command(toks, pos + 1, expr)
        return expr, pos

    def _command(self, toks: list[_Tok], pos: int, piped: str | None) -> tuple[str, int]:
        if pos >= len(toks):
            raise self.err("missing command after |")
        head = toks[pos]
        if head.kind == "ident" and head.text not in ("true", "false", "nil"):
            if head.text not in FUNCTIONS:
                raise self.err(f'function "{head.text}" not defined')
            args, pos = self._args(toks, pos + 1)
            if piped is not None:
                args.append(piped)
            return self._with_after("F[" + self.const(head.text) + "](" + ", ".join(args) + ")", head.after), pos
        first, pos2 = self._operand(toks, pos)
        args, pos3 = self._args(toks, pos2)
        if piped is not None:
            args.append(piped)
        if not args:
            return first, pos2
        # a method call with arguments: .X.Method arg...
        if (head.kind == "field" and head.text != ".") or (head.kind == "var" and "." in head.text):
            base_text, _, method = (head.text + head.after).rpartition(".")
            base = self._chain_expr(base_text) if base_text else "D"
            return "M(" + base + ", " + self.const(method) + ", " + ", ".join(args) + ")", pos3
        raise self.err(f"can't give argument to non-function {head.text}")

    def _args(self, toks: list[_Tok], pos: int) -> tuple[list[str], int]:
        args: list[str] = []
        while pos < len(toks) and toks[pos].text not in ("|", ")"):
            arg, pos = self._operand(toks, pos)
            args.append(arg)
        return args, pos

    def _operand(self, toks: list[_Tok], pos: int) -> tuple[str, int]:
        tok = toks[pos]
        if tok.text == "(":
            expr, pos = self._pipe(toks, pos + 1)
            if pos >= len(toks) or toks[pos].text != ")":
                raise self.err("unclosed (")
            return self._with_after(expr, toks[pos].after), pos + 1
        if tok.kind in ("str", "raw"):
            return self.const(self._string(tok.text)), pos + 1
        if tok.kind == "chr":
            return self.const(ord(self._string('"' + tok.text[1:-1] + '"'))), pos + 1
        if tok.kind == "num":
            value = float(tok.text) if re.search(r"[.eE]", tok.text) and not tok.text.lower().startswith(("0x", "-0x"))\
                else int(tok.text, 0)  # fmt: skip
            return self.const(value), pos + 1
        if tok.kind == "ident":
            if tok.text in ("true", "false"):
                return ("true" if tok.text == "true" else "false"), pos + 1
            if tok.text == "nil":
                return "none", pos + 1
            if tok.text in FUNCTIONS:  # a niladic call as an argument is not Go; require parentheses
                raise self.err(f"function {tok.text} needs parentheses when used as an argument")
            raise self.err(f'function "{tok.text}" not defined')
        if tok.kind in ("field", "var"):
            return self._chain_expr(tok.text + tok.after), pos + 1
        raise self.err(f"unexpected {tok.text!r}")

    def _with_after(self, expr: str, after: str) -> str:
        for name in after.split(".")[1:]:
            expr = "G(" + expr + ", " + self.const(name) + ")"
        return expr

    def _chain_expr(self, text: str) -> str:
        if text.startswith("$"):
            var, _, rest = text.partition(".")
            if not self.scope.declared(var):
                raise self.err(f"undefined variable {var!r}")
            base, dot_type, names = self._var(var), (self.root if var == "$" else None), rest.split(".") if rest else []
        else:
            base, dot_type, names = "D", self.scope.dot[-1], [n for n in text.split(".") if n]
        if names and dot_type is not None:
            known = self.lib.known_fields.get(dot_type)
            if known is not None and names[0] not in known:
                raise self.err(f"can't evaluate field {names[0]} (known: {', '.join(known)})")
        return self._with_after(base, "." + ".".join(names) if names else "")

    def _range_type(self, expr: str) -> str | None:
        e = expr.strip()
        if self.scope.dot[-1] == self.root and e in (".Alerts", ".Alerts.Firing", ".Alerts.Resolved", "$.Alerts"):
            return self.lib.range_types.get("Alerts")
        return None


class Template:
    """A compiled template; :meth:`render` runs it in the sandbox."""

    def __init__(self, lib: TemplateLibrary, jinja: jinja2.Template, consts: list[Any], source: str) -> None:
        self._lib, self._jinja, self._consts, self.source = lib, jinja, consts, source

    def render(self, data: Any, variables: Mapping[str, Any] | None = None) -> str:
        """Render with ``data`` as dot (and ``$``) and ``variables`` (``{"$value": 0.5}``); raise
        :class:`TemplateRenderError` when it fails."""
        ctx = {"D": data, "V__root": data, "K": self._consts}
        for name, value in (variables or {}).items():
            ctx["V_" + name.lstrip("$")] = value
        try:
            return self._jinja.render(ctx)
        except TemplateRenderError:
            raise
        except (jinja2.TemplateError, TypeError, ValueError, KeyError, IndexError, AttributeError, RecursionError,
                ZeroDivisionError, OverflowError) as exc:  # fmt: skip
            raise TemplateRenderError(f"{self.source}: {type(exc).__name__}: {exc}") from None


class TemplateLibrary:
    """Named templates (``define`` blocks from template files and config strings) and the compiler.

    ``known_fields`` maps a data type name to its fields, for compile-time checks; ``root`` names the type of
    dot at the top of each template.
    """

    def __init__(self, *, html: bool = False, root: str | None = None,
                 known_fields: Mapping[str, tuple[str, ...]] | None = None,
                 range_types: Mapping[str, str] | None = None) -> None:  # fmt: skip
        self.root = root
        self.known_fields = dict(known_fields or {})
        self.range_types = dict(range_types or {})
        self.referenced: list[tuple[str, str, int]] = []
        self._defines: dict[str, tuple[str, list[Any], str]] = {}
        self._macros: dict[str, Template] = {}
        self._envs = {flag: self._env(flag) for flag in (False, True)}
        self._html = html

    def _env(self, autoescape: bool) -> SandboxedEnvironment:
        env = SandboxedEnvironment(
            undefined=jinja2.StrictUndefined,
            autoescape=autoescape,
            keep_trailing_newline=True,
            extensions=["jinja2.ext.loopcontrols"],
        )
        env.globals.update({"F": FUNCTIONS, "G": get_field, "M": call_method, "I": iter_items, "T": truth,
                            "S": show_markup if autoescape else show})  # fmt: skip
        return env

    def add_file(self, text: str, source: str) -> None:
        """Add the ``define`` blocks of a template file (text outside them is ignored, as in Go)."""
        comp = _Compiler(self, source, text, 1, None, ())
        comp.compile()
        for name, body in comp.defines.items():
            self._defines[name] = (body, comp.consts, source)

    def compile(self, text: str, source: str, *, line: int = 1, variables: Iterable[str] = (),
                html: bool | None = None, root: str | bool | None = False) -> Template:  # fmt: skip
        """Compile one template; its ``define`` blocks join the library. Raise :class:`TemplateError`."""
        comp = _Compiler(self, source, text, line, self.root if root is False else root, variables)  # type: ignore[arg-type]
        body = comp.compile()
        for name, d in comp.defines.items():
            self._defines[name] = (d, comp.consts, source)
        autoescape = self._html if html is None else html
        try:
            jinja = self._envs[autoescape].from_string(body, globals={"TPL": self._call_template(autoescape)})
        except jinja2.TemplateSyntaxError as exc:  # pragma: no cover - the translation emits valid Jinja
            raise TemplateError(source, line, f"cannot translate template: {exc.message}") from None
        return Template(self, jinja, comp.consts, source)

    def check_references(self) -> None:
        """Raise :class:`TemplateError` for a ``{{ template "x" }}`` whose ``x`` is defined nowhere."""
        for name, source, line in self.referenced:
            if name not in self._defines:
                raise TemplateError(source, line, f'no such template "{name}"')

    def _call_template(self, autoescape: bool) -> Callable[[str, Any], str]:
        cache: dict[str, jinja2.Template] = {}

        def call(name: str, data: Any) -> str:
            entry = self._defines.get(name)
            if entry is None:
                raise TemplateRenderError(f'no such template "{name}"')
            body, consts, _ = entry
            tpl = cache.get(name)
            if tpl is None:
                tpl = cache[name] = self._envs[autoescape].from_string(body, globals={"TPL": call})
            out = tpl.render({"D": data, "V__root": data, "K": consts})
            return Markup(out) if autoescape else out

        return call

    def defined(self, name: str) -> bool:
        """Whether a template ``name`` is defined."""
        return name in self._defines


def show_markup(v: Any) -> Any:
    return v if isinstance(v, Markup) else show(v)
