"""Rule files: Prometheus-shaped YAML (groups of rules) with tunewatch's rule kinds.

A rule watches one metric of the catalogue over one or more dimension sets::

    groups:
      - name: playback
        rules:
          - alert: PlaybackFailuresUp
            kind: anomaly          # threshold | anomaly | absence
            metric: failure_rate
            dimensions: [global, market, "market,cdn", platform, track_id]
            min_score: 0.8         # detector score (0..1)
            min_weight: 100        # evidence guard: the metric's denominator (attempts here)
            min_delta: 0.03        # |actual - expected| at least
            min_ratio: 2.0         # actual >= 2 x expected (up) / <= expected / 2 (down)
            for: 2m
            keep_firing_for: 5m
            labels: {severity: critical}
            annotations:
              summary: "Playback failures at {{ $value }} ({{ $dims }})"
              runbook_url: https://runbooks.example.com/playback-failures
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from tunewatch.errors import ConfigError
from tunewatch.process.catalogue import METRICS
from tunewatch.process.dimensions import dimension_set

_DURATION_RE = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration_ms(text: str | int | float) -> int:
    """``"90s"``, ``"5m"``, ``"1h30m"`` (or a number of seconds) → milliseconds."""
    if isinstance(text, int | float):
        return int(text * 1000)
    m = _DURATION_RE.match(text.strip())
    if not text.strip() or not m:
        raise ValueError(f"invalid duration {text!r} (use e.g. 90s, 5m, 1h30m)")
    h, mi, s = (int(g) if g else 0 for g in m.groups())
    return (h * 3600 + mi * 60 + s) * 1000


Duration = Annotated[int, Field(ge=0)]


class Rule(BaseModel):
    """One alerting rule."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    alert: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    kind: Literal["threshold", "anomaly", "absence"] = "anomaly"
    metric: str
    dimensions: list[str] = Field(default_factory=lambda: ["global"])
    direction: Literal["up", "down", "both"] | None = None
    # anomaly
    min_score: float = Field(0.8, ge=0, le=1)
    min_delta: float = Field(0.0, ge=0)
    min_ratio: float = Field(1.0, ge=1)
    # threshold
    op: Literal[">", ">=", "<", "<="] = ">"
    value: float | None = None
    # absence
    min_expected: float = Field(5.0, ge=0)
    # guards and lifecycle
    min_weight: float = Field(0.0, ge=0)
    for_ms: Duration = Field(0, alias="for")
    keep_firing_for_ms: Duration = Field(0, alias="keep_firing_for")
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    @field_validator("for_ms", "keep_firing_for_ms", mode="before")
    @classmethod
    def _duration(cls, v: object) -> int:
        if isinstance(v, str | int | float):
            return parse_duration_ms(v)
        raise ValueError("expected a duration such as 2m")

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

    @model_validator(mode="after")
    def _kind_fields(self) -> Rule:
        if self.kind == "threshold" and self.value is None:
            raise ValueError("a threshold rule needs `value`")
        if self.kind == "absence" and METRICS[self.metric].kind not in ("count", "sum"):
            raise ValueError("an absence rule needs a count or sum metric")
        return self

    @property
    def effective_direction(self) -> Literal["up", "down", "both"]:
        """Direction of change that matters: the rule's, else the metric's harmful direction."""
        if self.kind == "absence":
            return "down"
        return self.direction or METRICS[self.metric].bad

    @property
    def severity(self) -> str:
        """The ``severity`` label (default ``warning``)."""
        return self.labels.get("severity", "warning")


class RuleGroup(BaseModel):
    """A named group of rules."""

    model_config = ConfigDict(extra="forbid")
    name: str
    rules: list[Rule]


class RuleSet(BaseModel):
    """A whole rule file."""

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
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{source}{where}: invalid YAML ({getattr(exc, 'problem', exc)})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a rule file must be a mapping with `groups`")
    try:
        return RuleSet.model_validate(data)
    except PydanticValidationError as exc:
        problems = []
        for err in exc.errors()[:10]:
            loc = ".".join(str(x) for x in err["loc"])
            problems.append(f"{source}: {loc}: {err['msg']}")
        raise ConfigError("\n".join(problems)) from exc
