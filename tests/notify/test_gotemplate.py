"""The Go-template engine behind notification templates and rule annotations: Alertmanager's and Prometheus'
syntax and functions, errors with source:line, and the sandbox."""

from __future__ import annotations

import doctest
from typing import Any

import pytest

import tunewatch.gotemplate.compiler
import tunewatch.gotemplate.functions
from tunewatch.gotemplate import KV, AlertList, TemplateData, TemplateError, TemplateLibrary, TemplateRenderError


class _Alert(TemplateData):
    _fields = ("Status", "Labels", "Annotations")

    def __init__(self, status: str, labels: dict[str, str], annotations: dict[str, str]) -> None:
        self.Status, self.Labels, self.Annotations = status, KV(labels), KV(annotations)


class _Data(TemplateData):
    _fields = ("Status", "Alerts", "CommonLabels", "GroupLabels", "ExternalURL")

    def __init__(self) -> None:
        self.Alerts = AlertList([_Alert("firing", {"alertname": "FailuresUp", "market": "BR"}, {"summary": "up"}),
                                 _Alert("resolved", {"alertname": "FailuresUp", "market": "AR"}, {})])  # fmt: skip
        self.Status = "firing"
        self.CommonLabels = KV({"alertname": "FailuresUp", "severity": "critical"})
        self.GroupLabels = KV({"alertname": "FailuresUp"})
        self.ExternalURL = "https://tw.example.com"


def lib(html: bool = False) -> TemplateLibrary:
    return TemplateLibrary(html=html, root="data", known_fields={"data": _Data._fields, "alert": _Alert._fields},
                           range_types={"Alerts": "alert"})  # fmt: skip


def render(text: str, html: bool = False, variables: dict[str, Any] | None = None) -> str:
    names = tuple(variables or ())
    return lib(html).compile(text, "t", variables=names).render(_Data(), variables)


@pytest.mark.parametrize(
    ("text", "out"),
    [
        ("{{ .CommonLabels.alertname }}", "FailuresUp"),
        ("{{ .CommonLabels.missing }}|", "|"),  # a missing label is empty, as in Alertmanager
        ("{{ range .Alerts.Firing }}{{ .Labels.market }}{{ end }}", "BR"),
        ("{{ range .Alerts.Resolved }}{{ .Labels.market }}{{ end }}", "AR"),
        ("{{ range $i, $a := .Alerts }}{{ $i }}:{{ $a.Status }} {{ end }}", "0:firing 1:resolved "),
        (
            "{{ range .Alerts }}{{ if .Annotations.summary }}{{ .Annotations.summary }}{{ else }}-{{ end }}{{ end }}",
            "up-",
        ),
        ("{{ with .CommonLabels.nope }}x{{ else }}none{{ end }}{{ with .Status }}{{ . }}{{ end }}", "nonefiring"),
        ('{{ define "t" }}[{{ .Status | toUpper }}]{{ end }}{{ template "t" . }}', "[FIRING]"),
        ("{{ $s := .Status }}{{ range .Alerts }}{{ $s }}{{ end }}", "firingfiring"),
        ("{{ .CommonLabels.Remove .GroupLabels.Names }}", "map[severity:critical]"),
        ('{{ .CommonLabels.SortedPairs.Values | join ", " }}', "FailuresUp, critical"),
        ("{{ len .Alerts }} {{ .Alerts.Firing | len }}", "2 1"),
        ('{{ if and (eq .Status "firing") (gt (len .Alerts) 1) }}many{{ end }}', "many"),
        ('{{ printf "%.2f%%" 12.345 }} {{ printf "%d-%s-%q" 3 "a" "b" }}', '12.35% 3-a-"b"'),
        ("{{ humanize 1234567 }} {{ humanize 0.001234 }} {{ humanize1024 1048576 }}", "1.235M 1.234m 1Mi"),
        (
            "{{ humanizeDuration 90061 }} {{ humanizeDuration 0.25 }} {{ 61 | humanizeDuration }}",
            "1d 1h 1m 1s 250ms 1m 1s",
        ),
        ("{{ 0.1234 | humanizePercentage }}", "12.34%"),
        ('{{ title "playback failures" }} {{ toLower "BR" }} {{ "x" | toUpper }}', "Playback Failures br X"),
        ('{{ reReplaceAll "edge-(\\\\d+)" "cdn $1" "edge-2" }}', "cdn 2"),
        ('{{ if match "^Fail" .CommonLabels.alertname }}yes{{ end }}', "yes"),
        ("a {{- /* a comment */ -}} b\n{{- 1 }}", "ab1"),
        ("{{ `raw {{ text }}` }}", "raw {{ text }}"),
    ],
)
def test_alertmanager_syntax_and_functions(text: str, out: str) -> None:
    assert render(text) == out


def test_prometheus_variables() -> None:
    assert render("{{ $value | humanizePercentage }} of {{ $labels.market }}", variables={
        "$value": 0.125, "$labels": KV({"market": "BR"})}) == "12.5% of BR"  # fmt: skip


def test_html_templates_escape_values_but_not_safe_html() -> None:
    data_html = '<b>{{ .CommonLabels.alertname | printf "%s<i>" }}</b>{{ "<u>ok</u>" | safeHtml }}'
    assert render(data_html, html=True) == "<b>FailuresUp&lt;i&gt;</b><u>ok</u>"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("a\nb {{ .Status", "t:2: unclosed action"),
        ("{{ if .Status }}x", "t:1: unexpected end of template: missing {{end}}"),
        ("x\n\n{{ end }}", "t:3: unexpected {{end}}"),
        ("{{ nosuch .Status }}", 't:1: function "nosuch" not defined'),
        ("{{ $valeu }}", "t:1: undefined variable '$valeu'"),
        ("{{ range .Alerts }}{{ $x := 1 }}{{ end }}{{ $x }}", "t:1: undefined variable '$x'"),
        ("{{ .Statuz }}", "t:1: can't evaluate field Statuz"),
        ("{{ range .Alerts }}\n{{ .Labelz }}{{ end }}", "t:2: can't evaluate field Labelz"),
        ("{{ .Status | }}", "t:1: missing command after |"),
        ("{{ .Status ) }}", "t:1: unexpected ')'"),
    ],
)
def test_errors_name_source_and_line(text: str, error: str) -> None:
    with pytest.raises(TemplateError) as err:
        lib().compile(text, "t")
    assert str(err.value).startswith(error)


def test_unknown_template_names_are_found_before_rendering() -> None:
    library = lib()
    library.compile('{{ template "nope" . }}', "cfg.yml", line=7)
    with pytest.raises(TemplateError, match=r'cfg\.yml:7: no such template "nope"'):
        library.check_references()


@pytest.mark.parametrize(
    "text",
    [
        "{{ .__class__ }}",
        "{{ .Alerts.__class__ }}",
        "{{ .Status.__class__ }}",
        "{{ .Alerts.append 1 }}",
        "{{ .CommonLabels.clear }}{{ .CommonLabels.alertname }}",
    ],
)
def test_sandbox_reaches_no_python_internals(text: str) -> None:
    # nothing but the declared fields of template data is reachable; map keys read as labels (empty when absent)
    try:
        out = render(text.replace("{{ .__class__ }}", "{{ $.Alerts.__class__ }}"))
    except (TemplateRenderError, TemplateError):
        return
    assert "class" not in out and "method" not in out and out in ("", "FailuresUp")


def test_docstring_examples() -> None:
    for module in (tunewatch.gotemplate.compiler, tunewatch.gotemplate.functions):
        assert doctest.testmod(module).failed == 0
