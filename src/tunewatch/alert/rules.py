"""Rule files: Prometheus-shaped YAML (groups of rules) with tunewatch's rule kinds.

A rule watches one metric of the catalogue over one or more dimension sets::

    groups:
      - name: playback
        rules:
          - alert: PlaybackFailuresUp
            kind: anomaly          # threshold | anomaly | absence | rate_of_change | slo_burn_rate
            metric: failure_rate
            dimensions: [global, market, "market,cdn", platform, track_id]
            min_score: 0.8         # detector score (0..1)
            min_weight: 100        # evidence guard: the metric's denominator (attempts here)
            min_delta: 0.03        # |actual - expected| at least
            min_ratio: 2.0         # actual >= 2 x expected (up) / <= expected / 2 (down)
            min_excess: 0          # counts: events missing or extra over the minutes the judgement pools
            count_tail: false      # counts, down: also exact count tails of the last 1-15 minutes' sums
            for: 2m
            keep_firing_for: 5m
            labels: {severity: critical}
            annotations:
              summary: "Playback failures at {{ $value }} ({{ $dims }})"
              runbook_url: https://runbooks.example.com/playback-failures

``rate_of_change`` compares a value with the series' value ``change_over`` earlier (``min_change: 0.5`` is a
50 % move in the rule's direction); ``slo_burn_rate`` alerts when the error budget of ``objective`` (for a
ratio metric: the error ratio is the value when higher is bad, ``1 - value`` otherwise) burns at least
``factor`` times too fast over both windows of any ``burn_windows`` pair (Google SRE workbook, ch. 5).
Error messages start with ``file:line:`` of the offending YAML node.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from tunewatch.alert.explain import compile_annotation
from tunewatch.durations import parse_duration_ms
from tunewatch.errors import ConfigError
from tunewatch.gotemplate import TemplateError
from tunewatch.process.catalogue import METRICS
from tunewatch.process.dimensions import dimension_set

Duration = Annotated[int, Field(ge=0)]
#: PyYAML's libyaml-backed safe loader when PyYAML was built with it (10x faster on the default pack: 1.3 ms
#: against 13 ms), else the pure-Python one; both build the same plain values
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
Kind = Literal["threshold", "anomaly", "absence", "rate_of_change", "slo_burn_rate"]


def _duration_field(v: object) -> int:
    if isinstance(v, str | int | float) and not isinstance(v, bool):
        return parse_duration_ms(v)
    raise ValueError("expected a duration such as 2m")


class BurnWindow(BaseModel):
    """One multi-window pair of an SLO burn-rate rule: both windows must burn at ``factor`` x or more.

    >>> w = BurnWindow.model_validate({"long": "1h", "short": "5m", "factor": 14.4})
    >>> w.long_ms, w.short_ms, w.factor
    (3600000, 300000, 14.4)
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    long_ms: Duration = Field(alias="long")
    short_ms: Duration = Field(alias="short")
    factor: float = Field(gt=0)

    @field_validator("long_ms", "short_ms", mode="before")
    @classmethod
    def _duration(cls, v: object) -> int:
        return _duration_field(v)

    @model_validator(mode="after")
    def _order(self) -> BurnWindow:
        if self.short_ms < 60_000 or self.short_ms % 60_000 or self.long_ms % 60_000:
            raise ValueError("burn windows must be whole minutes, at least 1m")
        if self.short_ms >= self.long_ms:
            raise ValueError("the `short` window must be shorter than the `long` one")
        if self.long_ms > 3 * 24 * 3_600_000:
            raise ValueError("the `long` window may be at most 72h")
        return self


def _workbook_windows() -> list[BurnWindow]:
    """The SRE workbook's paging pairs: 2 % of a 30-day budget in 1 h, 5 % in 6 h."""
    return [
        BurnWindow.model_validate({"long": "1h", "short": "5m", "factor": 14.4}),
        BurnWindow.model_validate({"long": "6h", "short": "30m", "factor": 6.0}),
    ]


class Rule(BaseModel):
    """One alerting rule.

    >>> r = Rule.model_validate({"alert": "PlaysDrop", "kind": "rate_of_change", "metric": "plays",
    ...                          "change_over": "10m", "min_change": 0.3, "direction": "down"})
    >>> r.kind, r.change_over_ms, r.dimensions
    ('rate_of_change', 600000, ['global'])
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    alert: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    kind: Kind = "anomaly"
    metric: str
    dimensions: list[str] = Field(default_factory=lambda: ["global"])
    direction: Literal["up", "down", "both"] | None = None
    # anomaly
    min_score: float = Field(0.8, ge=0, le=1)
    min_delta: float = Field(0.0, ge=0)
    min_ratio: float = Field(1.0, ge=1)
    min_excess: float = Field(0.0, ge=0)
    #: counts: also judge drops by exact count tails over the last 1..15 minutes (see detect.count_tail)
    count_tail: bool = False
    # threshold
    op: Literal[">", ">=", "<", "<="] = ">"
    value: float | None = None
    # absence
    min_expected: float = Field(5.0, ge=0)
    # rate of change
    change_over_ms: Duration = Field(600_000, alias="change_over")
    min_change: float = Field(0.5, gt=0)
    min_base: float = Field(0.0, ge=0)
    # SLO burn rate
    objective: float | None = None
    burn_windows: list[BurnWindow] = Field(default_factory=_workbook_windows, min_length=1)
    # guards and lifecycle
    min_weight: float = Field(0.0, ge=0)
    for_ms: Duration = Field(0, alias="for")
    keep_firing_for_ms: Duration = Field(0, alias="keep_firing_for")
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    @field_validator("for_ms", "keep_firing_for_ms", "change_over_ms", mode="before")
    @classmethod
    def _duration(cls, v: object) -> int:
        return _duration_field(v)

    @field_validator("objective")
    @classmethod
    def _objective(cls, v: float | None) -> float | None:
        if v is None:
            return v
        share = v / 100 if v > 1 else v  # 99.5 and 0.995 mean the same
        if not 0 < share < 1:
            raise ValueError("objective must be a success share in (0, 1) or a percentage in (1, 100)")
        return share

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, v: str) -> str:
        if v not in METRICS:
            raise ValueError(f"unknown metric {v!r} (known: {', '.join(METRICS)})")
        return v

    @field_validator("dimensions")
    @classmethod
    def _known_dimensions(cls, v: list[str]) -> list[str]:
        out = []
        for name in v:
            try:
                out.append(dimension_set(name).name)
            except KeyError as exc:
                raise ValueError(str(exc.args[0])) from exc
        return out

    @field_validator("annotations")
    @classmethod
    def _templates(cls, v: dict[str, str]) -> dict[str, str]:
        for key, text in v.items():
            if "{{" in text:
                try:
                    compile_annotation(text)
                except TemplateError as exc:
                    raise ValueError(f"{key}: {exc.reason}") from None
        return v

    @model_validator(mode="after")
    def _kind_fields(self) -> Rule:
        if self.kind == "threshold" and self.value is None:
            raise ValueError("a threshold rule needs `value`")
        if self.kind == "absence" and METRICS[self.metric].kind not in ("count", "sum"):
            raise ValueError("an absence rule needs a count or sum metric")
        if self.count_tail and (
            self.kind != "anomaly" or METRICS[self.metric].kind != "count" or self.effective_direction != "down"
        ):
            raise ValueError("`count_tail` needs an anomaly rule on a count metric with direction down")
        if self.kind == "rate_of_change" and (self.change_over_ms < 60_000 or self.change_over_ms % 60_000):
            raise ValueError("`change_over` must be whole minutes, at least 1m")
        if self.kind == "slo_burn_rate":
            spec = METRICS[self.metric]
            if spec.kind != "ratio" or spec.weight is None:
                raise ValueError(f"an slo_burn_rate rule needs a ratio metric with a weight, not {self.metric!r}")
            if spec.bad == "both":
                raise ValueError(f"metric {self.metric!r} has no harmful direction, so no error ratio")
            if self.objective is None:
                raise ValueError("an slo_burn_rate rule needs `objective` (e.g. 99.5)")
        return self

    @property
    def error_budget(self) -> float:
        """Allowed error ratio of an SLO rule (``1 - objective``)."""
        return 1.0 - (self.objective if self.objective is not None else 1.0)

    @property
    def history_windows(self) -> int:
        """How many past 1-minute windows the rule's condition needs (0 for stateless kinds)."""
        if self.kind == "rate_of_change":
            return self.change_over_ms // 60_000
        if self.kind == "slo_burn_rate":
            return max(w.long_ms for w in self.burn_windows) // 60_000
        return 0

    @property
    def effective_direction(self) -> Literal["up", "down", "both"]:
        """Direction of change that matters: the rule's, else the metric's harmful direction."""
        if self.kind == "absence":
            return "down"
        if self.kind == "slo_burn_rate":
            return METRICS[self.metric].bad
        return self.direction or METRICS[self.metric].bad

    @property
    def severity(self) -> str:
        """The ``severity`` label (default ``warning``)."""
        return self.labels.get("severity", "warning")


class RuleGroup(BaseModel):
    """A named group of rules.

    >>> g = RuleGroup.model_validate({"name": "quality", "rules": [{"alert": "SkipsUp", "metric": "skip_rate"}]})
    >>> g.name, [r.alert for r in g.rules]
    ('quality', ['SkipsUp'])
    """

    model_config = ConfigDict(extra="forbid")
    name: str
    rules: list[Rule]


class RuleSet(BaseModel):
    """A whole rule file.

    >>> rules = parse_rules("groups: [{name: g, rules: [{alert: A, metric: plays, dimensions: [market]}, "
    ...                     "{alert: B, metric: plays}]}]")
    >>> [r.alert for r in rules.rules], rules.targets()
    (['A', 'B'], {'plays': ['market', 'global']})
    """

    model_config = ConfigDict(extra="forbid")
    groups: list[RuleGroup]

    @property
    def rules(self) -> list[Rule]:
        """Every rule of every group, in file order."""
        return [r for g in self.groups for r in g.rules]

    def targets(self) -> dict[str, list[str]]:
        """Metric → dimension sets that the rules watch (what the detection stage must run)."""
        out: dict[str, list[str]] = {}
        for r in self.rules:
            dims = out.setdefault(r.metric, [])
            dims.extend(d for d in r.dimensions if d not in dims)
        return out


def default_rules_path() -> Path:
    """The default rule pack shipped with tunewatch."""
    return Path(__file__).with_name("default_rules.yaml")


def load_rules(path: Path | str | None = None) -> RuleSet:
    """Load and validate a rule file (the default pack when ``path`` is None)."""
    p = Path(path) if path is not None else default_rules_path()
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read rule file ({exc.strerror})") from exc
    return parse_rules(text, str(p))


def parse_rules(text: str, source: str = "<rules>") -> RuleSet:
    """Parse rule-file text; errors name the file, the rule and the field."""
    try:
        data = yaml.load(text, Loader=_SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{source}{where}: invalid YAML ({getattr(exc, 'problem', exc)})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a rule file must be a mapping with `groups`")
    try:
        return RuleSet.model_validate(data)
    except PydanticValidationError as exc:
        root = yaml.compose(text)
        problems = []
        for err in exc.errors()[:10]:
            loc = ".".join(str(x) for x in err["loc"])
            line = yaml_line(root, err["loc"])
            where = f"{source}:{line}" if line else source
            problems.append(f"{where}: {loc}: {err['msg']}")
        raise ConfigError("\n".join(problems)) from exc


def yaml_line(root: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    r"""1-based line of the YAML node at ``loc`` (the deepest one that exists), from a composed document.

    >>> yaml_line(yaml.compose("groups:\n  - name: g\n    rules: []\n"), ("groups", 0, "rules"))
    3
    """
    node, line = root, None
    for part in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        nxt: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    line, nxt = key.start_mark.line + 1, value
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            nxt = node.value[part]
        node = nxt
    if node is not None:
        line = node.start_mark.line + 1 if not isinstance(node, yaml.ScalarNode) or line is None else line
    return line
