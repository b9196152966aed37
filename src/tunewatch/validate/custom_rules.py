"""Business rules as configuration: a small, safe expression language compiled to Polars expressions.

A rule file is YAML, a list of rules (or a mapping with a ``rules`` list)::

    - name: played_within_duration
      when: "event_type == 'play'"
      check: "ms_played <= track_duration_ms + 5000"
      reason: exceeds_duration
      field: ms_played

A row fails a rule when ``when`` holds (default: always) and ``check`` is false; it is then rejected with
``field: reason`` (``field`` defaults to the first field ``check`` names, ``reason`` to the rule's name). As in
SQL ``CHECK`` constraints, a check that is unknown because a field is null passes.

The language (no ``eval``, nothing but this grammar)::

    expr       := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | comparison
    comparison := sum [("==" | "!=" | "<" | "<=" | ">" | ">=") sum
                      | ["not"] "in" "(" literal ("," literal)* ")"
                      | "is" ["not"] "null"]
    sum        := product (("+" | "-") product)*
    product    := unary (("*" | "/") unary)*
    unary      := "-" unary | primary
    primary    := INT | FLOAT | STRING | "true" | "false" | FIELD | "(" expr ")"

Identifiers are the §2 schema fields only; strings are single- or double-quoted. Types are checked when the
rule is compiled: arithmetic and ordering on numbers (ints, the timestamp in epoch ms), ``==``/``!=``/``in``
between values of one type, ``and``/``or``/``not`` on conditions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import polars as pl
import yaml

from tunewatch.errors import ConfigError
from tunewatch.schema import FIELD_BY_NAME, Kind
from tunewatch.validate.rules import Rule, typed

Type = Literal["num", "str", "bool"]
_KEYWORDS: Final = frozenset({"and", "or", "not", "in", "is", "null", "true", "false"})
_TOKEN_RE: Final = re.compile(
    r"""(?P<ws>\s+)
      |(?P<float>\d+\.\d*(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+)
      |(?P<int>\d+)
      |(?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      |(?P<name>[A-Za-z_][A-Za-z0-9_]*)
      |(?P<op><=|>=|==|!=|<|>|\+|-|\*|/|\(|\)|,)""",
    re.VERBOSE,
)
_MAX_LENGTH: Final = 2000
_MAX_DEPTH: Final = 50


@dataclass(frozen=True, slots=True)
class Token:
    """One token: its kind (``int``, ``float``, ``str``, ``name``, ``kw``, ``op``, ``end``), text and column.

    >>> [(t.kind, t.text, t.column) for t in tokenize("ms_played >= 30000")][:3]
    [('name', 'ms_played', 1), ('op', '>=', 11), ('int', '30000', 14)]
    """

    kind: str
    text: str
    column: int  # 1-based


class ExpressionError(ConfigError):
    """An expression does not parse or does not type-check; ``column`` is 1-based.

    >>> try:
    ...     compile_expression("ms_played >= 'long'")
    ... except ExpressionError as exc:
    ...     exc.column
    11
    """

    def __init__(self, problem: str, column: int) -> None:
        super().__init__(f"column {column}: {problem}")
        self.problem = problem
        self.column = column


def tokenize(text: str) -> list[Token]:
    """Split an expression into tokens (:class:`ExpressionError` at the first character that starts none)."""
    if len(text) > _MAX_LENGTH:
        raise ExpressionError(f"expression longer than {_MAX_LENGTH} characters", _MAX_LENGTH + 1)
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            raise ExpressionError(f"unexpected character {text[pos]!r}", pos + 1)
        kind = m.lastgroup or ""
        if kind != "ws":
            word = m.group()
            if kind == "name" and word in _KEYWORDS:
                kind = "kw"
            tokens.append(Token(kind, word, pos + 1))
        pos = m.end()
    tokens.append(Token("end", "", len(text) + 1))
    return tokens


class _Parser:
    """Recursive-descent parser that builds Polars expressions and checks types as it goes."""

    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0
        self.fields: list[str] = []

    # -- helpers
    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def accept(self, kind: str, text: str) -> bool:
        tok = self.peek()
        if tok.kind == kind and tok.text == text:
            self.i += 1
            return True
        return False

    def expect(self, kind: str, text: str) -> Token:
        tok = self.peek()
        if tok.kind != kind or tok.text != text:
            raise ExpressionError(f"expected {text!r}, found {_show(tok)}", tok.column)
        return self.take()

    # -- grammar
    def parse(self) -> tuple[pl.Expr, Type]:
        expr, kind = self.or_()
        tok = self.peek()
        if tok.kind != "end":
            raise ExpressionError(f"unexpected {_show(tok)}", tok.column)
        return expr, kind

    def or_(self) -> tuple[pl.Expr, Type]:
        left, kind = self.and_()
        while self.peek().text == "or" and self.peek().kind == "kw":
            tok = self.take()
            right, rkind = self.and_()
            _need(kind == "bool" and rkind == "bool", "'or' needs conditions on both sides", tok)
            left = left | right
        return left, kind

    def and_(self) -> tuple[pl.Expr, Type]:
        left, kind = self.not_()
        while self.peek().text == "and" and self.peek().kind == "kw":
            tok = self.take()
            right, rkind = self.not_()
            _need(kind == "bool" and rkind == "bool", "'and' needs conditions on both sides", tok)
            left = left & right
        return left, kind

    def not_(self) -> tuple[pl.Expr, Type]:
        tok = self.peek()
        if tok.kind == "kw" and tok.text == "not":
            self.take()
            self.depth += 1
            _need(self.depth <= _MAX_DEPTH, "expression nested too deeply", tok)
            expr, kind = self.not_()
            self.depth -= 1
            _need(kind == "bool", "'not' needs a condition", tok)
            return ~expr, "bool"
        return self.comparison()

    def comparison(self) -> tuple[pl.Expr, Type]:
        left, kind = self.sum_()
        tok = self.peek()
        if tok.kind == "op" and tok.text in ("==", "!=", "<", "<=", ">", ">="):
            self.take()
            right, rkind = self.sum_()
            _need(kind == rkind, f"cannot compare {kind} with {rkind} using {tok.text!r}", tok)
            if tok.text not in ("==", "!="):
                _need(kind == "num", f"{tok.text!r} needs numbers", tok)
            ops = {"==": left.eq, "!=": left.ne, "<": left.lt, "<=": left.le, ">": left.gt, ">=": left.ge}
            return ops[tok.text](right), "bool"
        negate = False
        if tok.kind == "kw" and tok.text == "not" and self.tokens[self.i + 1].text == "in":
            self.take()
            negate = True
            tok = self.peek()
        if tok.kind == "kw" and tok.text == "in":
            self.take()
            values = self.literal_list(kind)
            member = left.is_in(values)
            return (~member if negate else member), "bool"
        if tok.kind == "kw" and tok.text == "is":
            self.take()
            is_not = self.accept("kw", "not")
            self.expect("kw", "null")
            return (left.is_not_null() if is_not else left.is_null()), "bool"
        return left, kind

    def literal_list(self, kind: Type) -> list[object]:
        self.expect("op", "(")
        values: list[object] = []
        while True:
            tok = self.take()
            value, vkind = _literal(tok)
            _need(vkind == kind, f"'in' list holds a {vkind} where a {kind} is needed", tok)
            values.append(value)
            if self.accept("op", ")"):
                return values
            self.expect("op", ",")

    def sum_(self) -> tuple[pl.Expr, Type]:
        left, kind = self.product()
        while self.peek().kind == "op" and self.peek().text in ("+", "-"):
            tok = self.take()
            right, rkind = self.product()
            _need(kind == "num" and rkind == "num", f"{tok.text!r} needs numbers", tok)
            left = left + right if tok.text == "+" else left - right
        return left, kind

    def product(self) -> tuple[pl.Expr, Type]:
        left, kind = self.unary()
        while self.peek().kind == "op" and self.peek().text in ("*", "/"):
            tok = self.take()
            right, rkind = self.unary()
            _need(kind == "num" and rkind == "num", f"{tok.text!r} needs numbers", tok)
            left = left * right if tok.text == "*" else left / right
        return left, kind

    def unary(self) -> tuple[pl.Expr, Type]:
        tok = self.peek()
        if tok.kind == "op" and tok.text == "-":
            self.take()
            expr, kind = self.unary()
            _need(kind == "num", "'-' needs a number", tok)
            return -expr, kind
        return self.primary()

    def primary(self) -> tuple[pl.Expr, Type]:
        tok = self.take()
        if tok.kind == "op" and tok.text == "(":
            self.depth += 1
            _need(self.depth <= _MAX_DEPTH, "expression nested too deeply", tok)
            inner = self.or_()
            self.depth -= 1
            self.expect("op", ")")
            return inner
        if tok.kind == "name":
            return self.field(tok)
        if tok.kind in ("int", "float", "str") or tok.text in ("true", "false"):
            value, kind = _literal(tok)
            return pl.lit(value), kind
        raise ExpressionError(f"expected a value, found {_show(tok)}", tok.column)

    def field(self, tok: Token) -> tuple[pl.Expr, Type]:
        spec = FIELD_BY_NAME.get(tok.text)
        if spec is None:
            raise ExpressionError(f"unknown field {tok.text!r} (fields are the event schema's)", tok.column)
        self.fields.append(spec.name)
        if spec.kind in (Kind.INT, Kind.TIMESTAMP):
            return typed(spec.name), "num"
        if spec.kind is Kind.BOOL:
            return typed(spec.name), "bool"
        return pl.col(spec.name), "str"


def _literal(tok: Token) -> tuple[object, Type]:
    if tok.kind == "int":
        return int(tok.text), "num"
    if tok.kind == "float":
        return float(tok.text), "num"
    if tok.kind == "str":
        body = tok.text[1:-1]
        return re.sub(r"\\(.)", r"\1", body), "str"
    if tok.kind == "kw" and tok.text in ("true", "false"):
        return tok.text == "true", "bool"
    raise ExpressionError(f"expected a literal, found {_show(tok)}", tok.column)


def _need(ok: bool, problem: str, tok: Token) -> None:
    if not ok:
        raise ExpressionError(problem, tok.column)


def _show(tok: Token) -> str:
    return "end of expression" if tok.kind == "end" else repr(tok.text)


def compile_expression(text: str) -> tuple[pl.Expr, list[str]]:
    """Compile a condition to a Polars boolean expression; also return the fields it names, in order."""
    parser = _Parser(text)
    expr, kind = parser.parse()
    if kind != "bool":
        raise ExpressionError("the expression is a value, not a condition (compare it with something)", 1)
    return expr, parser.fields


@dataclass(frozen=True, slots=True)
class CustomRule:
    """A compiled user rule.

    >>> rule = compile_rule({"name": "short_ads", "when": "event_type == 'ad'",
    ...                      "check": "ad_revenue_micros < 10000000"})
    >>> rule.field, rule.code
    ('ad_revenue_micros', 'ad_revenue_micros: short_ads')
    """

    name: str
    field: str
    reason: str
    when: str | None
    check: str
    mask: pl.Expr
    message: str = ""

    @property
    def code(self) -> str:
        """The ``field: reason`` code rows failing this rule are rejected with."""
        return f"{self.field}: {self.reason}"


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Compiled user rules, ready for :class:`~tunewatch.validate.EnterpriseDataValidator`.

    >>> rules = load_rules("- {name: long_enough, check: 'ms_played >= 0', reason: negative_play}")
    >>> [r.reason for r in rules.rules()]
    ['ms_played: negative_play']
    """

    custom: tuple[CustomRule, ...]

    def rules(self) -> list[Rule]:
        """The rules in the validator's form (no column screen: evaluated on every batch)."""
        return [Rule(rule.code, rule.mask) for rule in self.custom]

    def messages(self) -> dict[str, str]:
        """Human-readable message of each rule's code (where the file gave one)."""
        return {rule.code: rule.message for rule in self.custom if rule.message}


_REASON_RE: Final = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_KEYS: Final = frozenset({"name", "when", "check", "reason", "field", "message"})


def compile_rule(spec: object, index: int = 0) -> CustomRule:
    """Compile one rule mapping; :class:`ConfigError` names the rule, the key and the column of a problem."""
    if not isinstance(spec, dict):
        raise ConfigError(f"rule #{index + 1}: must be a mapping with name and check, not {type(spec).__name__}")
    name = spec.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"rule #{index + 1}: 'name' is required (a non-empty string)")
    unknown = sorted(set(spec) - _KEYS)
    if unknown:
        raise ConfigError(f"rule {name!r}: unknown key(s) {', '.join(map(str, unknown))} (allowed: {sorted(_KEYS)})")
    check = spec.get("check")
    if not isinstance(check, str) or not check.strip():
        raise ConfigError(f"rule {name!r}: 'check' is required (an expression string)")
    when = spec.get("when")
    if when is not None and not isinstance(when, str):
        raise ConfigError(f"rule {name!r}: 'when' must be an expression string")
    try:
        check_expr, fields = compile_expression(check)
    except ExpressionError as exc:
        raise ConfigError(f"rule {name!r}: check, column {exc.column}: {exc.problem}") from exc
    mask = ~check_expr
    if when is not None:
        try:
            when_expr, _ = compile_expression(when)
        except ExpressionError as exc:
            raise ConfigError(f"rule {name!r}: when, column {exc.column}: {exc.problem}") from exc
        mask = when_expr.fill_null(False) & mask
    field_name = spec.get("field", fields[0] if fields else "rule")
    if not isinstance(field_name, str) or (field_name not in FIELD_BY_NAME and field_name != "rule"):
        raise ConfigError(f"rule {name!r}: 'field' must be an event schema field, not {field_name!r}")
    reason = spec.get("reason", name)
    if not isinstance(reason, str) or not _REASON_RE.match(reason):
        raise ConfigError(f"rule {name!r}: 'reason' must be a lower-case code like exceeds_duration, not {reason!r}")
    message = spec.get("message", "")
    return CustomRule(name, field_name, reason, when, check, mask.fill_null(False), str(message))


def compile_rules(specs: object) -> RuleSet:
    """Compile a list of rule mappings (or a mapping with a ``rules`` list)."""
    if isinstance(specs, dict) and "rules" in specs:
        specs = specs["rules"]
    if specs is None:
        return RuleSet(())
    if not isinstance(specs, list):
        raise ConfigError("custom rules: expected a list of rules (or a mapping with a 'rules' list)")
    compiled = [compile_rule(spec, i) for i, spec in enumerate(specs)]
    names = [rule.name for rule in compiled]
    doubled = sorted({n for n in names if names.count(n) > 1})
    if doubled:
        raise ConfigError(f"custom rules: duplicate rule name(s): {', '.join(doubled)}")
    return RuleSet(tuple(compiled))


def load_rules(source: RuleSet | str | Path) -> RuleSet:
    """A :class:`RuleSet` from a compiled set, a YAML file path, or YAML text."""
    if isinstance(source, RuleSet):
        return source
    named_file = isinstance(source, str) and "\n" not in source and source.endswith((".yaml", ".yml"))
    if isinstance(source, Path) or named_file:
        path = Path(source)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read custom rules ({exc.strerror or exc})") from exc
        where = str(path)
    else:
        text, where = str(source), "custom rules"
    try:
        specs = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML ({str(exc).splitlines()[0]})") from exc
    try:
        return compile_rules(specs)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
