"""Rule files: the default pack loads; mistakes are reported with the rule and the field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import tunewatch.alert.rules as rules_module
from tunewatch.alert.rules import RuleSet, default_rules_path, load_rules, parse_duration_ms, parse_rules
from tunewatch.cli.main import app
from tunewatch.errors import ConfigError


def test_default_pack_is_valid_and_watches_known_metrics() -> None:
    rules = load_rules()
    assert len(rules.rules) >= 7
    targets = rules.targets()
    assert "failure_rate" in targets and "market,cdn" in targets["failure_rate"]


@pytest.mark.parametrize(("text", "ms"), [("90s", 90_000), ("5m", 300_000), ("1h30m", 5_400_000), (30, 30_000)])
def test_durations(text: str | int, ms: int) -> None:
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        ("metric: nope", "unknown metric 'nope'"),
        ("metric: plays\n        dimensions: [galaxy]", "unknown dimension set 'galaxy'"),
        ("metric: plays\n        for: soon", "bad duration"),
        ("metric: plays\n        kind: threshold", "needs `value`"),
        ("metric: plays\n        colour: red", "colour"),
    ],
)
def test_errors_name_the_rule_and_field(snippet: str, message: str) -> None:
    text = f"groups:\n  - name: g\n    rules:\n      - alert: A\n        {snippet}\n"
    with pytest.raises(ConfigError) as err:
        parse_rules(text, "r.yaml")
    assert re.match(r"r\.yaml:[456]: groups\.0\.rules\.0", str(err.value))
    assert message in str(err.value)


def test_default_pack_reads_the_same_with_the_pure_python_loader() -> None:
    """Rule files are read with libyaml's safe loader when PyYAML has it: the same values as PyYAML's own."""
    text = default_rules_path().read_text(encoding="utf-8")
    assert yaml.load(text, Loader=rules_module._SafeLoader) == yaml.load(text, Loader=yaml.SafeLoader)
    assert parse_rules(text) == RuleSet.model_validate(yaml.load(text, Loader=yaml.SafeLoader))


def test_yaml_syntax_error_has_line_number() -> None:
    with pytest.raises(ConfigError, match=r"r.yaml:3: invalid YAML"):
        parse_rules("groups:\n  - name: g\n    rules: [a: b: c]\n", "r.yaml")


def test_rules_check_cli_reports_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "groups:\n  - name: g\n    rules:\n      - alert: Burn\n        kind: slo_burn_rate\n"
        "        metric: failure_rate\n        objective: 99.5\n        burn_windows:\n"
        "          - {long: 1h, short: 5m, factor: 0}\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["rules", "check", str(bad)])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert f"{bad}:9: groups.0.rules.0.burn_windows.0.factor" in text.replace("\n", "")
    good = CliRunner().invoke(app, ["rules", "check", "src/tunewatch/alert/examples/slo_rules.yaml"])
    assert good.exit_code == 0 and "4 rules OK" in good.output
