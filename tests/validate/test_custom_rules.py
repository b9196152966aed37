"""Business rules as configuration: the safe expression language, its errors, and the validator hook."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from tests.validate.corpus import NOW_MS, line
from tunewatch.errors import ConfigError
from tunewatch.ingest.readers import parse_ndjson_bytes
from tunewatch.validate import EnterpriseDataValidator
from tunewatch.validate.custom_rules import ExpressionError, compile_expression, load_rules, tokenize

RULES = """
- name: played_within_duration
  when: "event_type == 'play'"
  check: "ms_played <= track_duration_ms + 5000"
  reason: exceeds_duration
  field: ms_played
- name: ads_only_free
  when: "event_type == 'ad'"
  check: "tier == 'free'"
  reason: ad_not_free
- name: hd_needs_premium
  when: "bitrate_kbps > 320 and not (tier in ('premium', 'family', 'duo', 'student'))"
  check: "false"
  reason: hd_without_premium
  field: bitrate_kbps
- name: session_known
  when: "platform != 'tv'"
  check: "session_id is not null"
"""


def _frame(**columns: list[object]) -> pl.DataFrame:
    return pl.DataFrame(columns, strict=False)


def _mask(expr: str, frame: pl.DataFrame) -> list[bool | None]:
    compiled, _ = compile_expression(expr)
    return frame.select(compiled.alias("m")).get_column("m").to_list()


def test_tokenizer_reports_columns() -> None:
    tokens = tokenize("ms_played <= 5")
    assert [(t.kind, t.text, t.column) for t in tokens] == [
        ("name", "ms_played", 1), ("op", "<=", 11), ("int", "5", 14), ("end", "", 15),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("ms_played__v > 10", [False, True, None]),
        ("ms_played__v + 1 >= 11 and ms_played__v < 50", [False, True, None]),
        ("(ms_played__v * 2) / 4 == 10", [False, True, None]),
        ("-ms_played__v < -5", [False, True, None]),
    ],
)
def test_arithmetic_and_comparisons(expr: str, expected: list[bool | None]) -> None:
    # identifiers must be schema fields: the typed work column of an int field is what they compile to
    frame = _frame(ms_played__v=[1, 20, None])
    compiled, fields = compile_expression(expr.replace("ms_played__v", "ms_played"))
    assert fields and set(fields) == {"ms_played"}
    assert frame.select(compiled.alias("m")).get_column("m").to_list() == expected


def test_strings_membership_nulls_and_logic() -> None:
    frame = _frame(tier=["free", "premium", None], event_type=["ad", "play", "ad"])
    assert _mask("tier in ('free', 'duo')", frame) == [True, False, None]
    assert _mask("tier not in ('free')", frame) == [False, True, None]
    assert _mask("tier is null", frame) == [False, False, True]
    assert _mask('tier is not null and event_type == "ad"', frame) == [True, False, False]
    assert _mask("not event_type == 'ad' or tier == 'premium'", frame) == [False, True, None]  # Kleene logic


@pytest.mark.parametrize(
    ("expr", "column", "problem"),
    [
        ("ms_playd > 5", 1, "unknown field 'ms_playd'"),
        ("ms_played > 5 &", 15, "unexpected character '&'"),
        ("ms_played >", 12, "expected a value, found end of expression"),
        ("tier == 5", 6, "cannot compare str with num"),
        ("tier > 'a'", 6, "'>' needs numbers"),
        ("ms_played + tier > 1", 11, "'+' needs numbers"),
        ("ms_played", 1, "is a value, not a condition"),
        ("(ms_played > 1", 15, "expected ')'"),
        ("tier in ('free', 3)", 18, "'in' list holds a num"),
        ("__import__('os') == 1", 1, "unknown field '__import__'"),
        ("ms_played > 1 ms_played", 15, "unexpected 'ms_played'"),
    ],
)
def test_errors_name_column_and_problem(expr: str, column: int, problem: str) -> None:
    with pytest.raises(ExpressionError) as info:
        compile_expression(expr)
    assert info.value.column == column
    assert problem in info.value.problem


def test_rule_file_errors_name_the_rule(tmp_path: Path) -> None:
    bad = tmp_path / "rules.yaml"
    bad.write_text('- name: broken\n  check: "ms_played >= 0 and cdn =="\n')
    with pytest.raises(ConfigError, match=r"rules.yaml: rule 'broken': check, column 26: expected a value"):
        load_rules(bad)
    with pytest.raises(ConfigError, match="rule 'x': unknown key"):
        load_rules("- name: x\n  check: 'ms_played > 0'\n  eval: boom\n")
    with pytest.raises(ConfigError, match="duplicate rule name"):
        load_rules("- {name: a, check: 'ms_played > 0'}\n- {name: a, check: 'ms_played > 1'}\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_rules("- name: [unclosed\n")
    with pytest.raises(ConfigError, match="'field' must be an event schema field"):
        load_rules("- {name: a, check: 'ms_played > 0', field: nope}\n")
    with pytest.raises(ConfigError, match="cannot read custom rules"):
        load_rules(tmp_path / "missing.yaml")


def test_validator_applies_custom_rules(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    validator = EnterpriseDataValidator(custom_rules=path, clock=lambda: NOW_MS / 1000)
    payload = b"\n".join(
        [
            line(event_id="ok"),
            line(event_id="long", ms_played=300_000),  # also breaks the built-in §2 rule
            line(event_id="hd", bitrate_kbps=1411, tier="free"),
            line(event_id="nosession", session_id=None),
            line(event_id="tv", session_id=None, platform="tv"),
        ]
    )
    result = validator.validate(parse_ndjson_bytes(payload))
    rejected = result.rejected
    reasons = dict(zip(rejected["event_id"].to_list(), rejected["reasons"].to_list(), strict=True))
    assert reasons == {
        "long": ["ms_played: exceeds_duration"],
        "hd": ["bitrate_kbps: hd_without_premium"],
        "nosession": ["session_id: session_known"],
    }
    assert result.valid.get_column("event_id").to_list() == ["ok", "tv"]


def test_custom_rule_on_ad_tier_reports_both_reasons() -> None:
    validator = EnterpriseDataValidator(custom_rules=load_rules(RULES), clock=lambda: NOW_MS / 1000)
    result = validator.validate(parse_ndjson_bytes(line(event_type="ad", ad_revenue_micros=5)))
    assert result.rejected.get_column("reasons").to_list() == [["tier: ad_not_free_tier", "tier: ad_not_free"]]


def test_the_documented_example_rule_file_compiles() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "validation.md").read_text(encoding="utf-8")
    block = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    ruleset = load_rules(block)
    assert [r.code for r in ruleset.custom][:2] == ["ms_played: exceeds_duration", "tier: ad_not_free"]
    validator = EnterpriseDataValidator(custom_rules=ruleset, clock=lambda: NOW_MS / 1000)
    result = validator.validate(parse_ndjson_bytes(line(codec="flac", tier="free")))
    assert result.rejected["reasons"].to_list() == [["codec: lossless_without_premium"]]
