"""Go ``text/template`` templates (the syntax of Alertmanager and Prometheus templates) rendered by Jinja2's sandbox.

Alertmanager's notification templates and Prometheus' rule annotations are Go templates::

    {{ define "title" }}[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }}{{ end }}
    {{ range .Alerts.Firing }}{{ .Annotations.summary }} ({{ .Labels.market }}){{ end }}
    {{ $value | humanizePercentage }}

This module parses that syntax (actions ``if``/``else if``/``else``, ``range`` with ``else`` and ``$i, $e :=``,
``with``, ``define``, ``template``, ``block``, variables, pipelines, parenthesised calls, comments and the
``{{-``/``-}}`` trim markers) and translates each template into a Jinja2 template that runs in a
:class:`jinja2.sandbox.SandboxedEnvironment` with :class:`jinja2.StrictUndefined`. Why this way: Go's template
language is small and regular, so a translation is short and exact, and Jinja2 (well kept, widely audited)
does the evaluating in a sandbox, so a template can only reach the functions listed in :data:`FUNCTIONS` and
the fields of the data it is given (:class:`TemplateData` classes expose a fixed field list), never Python
internals. Every literal piece of the template reaches Jinja2 as a constant, never as Jinja2 source.

Errors are found when a template is compiled, as Go finds them when it parses: bad syntax, an unknown
function, an undefined variable (``{{ $valeu }}``), an unknown field of a known type (``.CommonLabelz``) or an
undefined ``{{ template "name" }}``. :class:`TemplateError` names the source and line.

>>> lib = TemplateLibrary()
>>> t = lib.compile('{{ .Status | toUpper }}: {{ range .Alerts }}{{ .Labels.market }} {{ end }}', "<doc>")
>>> t.render({"Status": "firing", "Alerts": [{"Labels": {"market": "BR"}}, {"Labels": {"market": "AR"}}]})
'FIRING: BR AR '
"""

from tunewatch.gotemplate.compiler import Template, TemplateLibrary
from tunewatch.gotemplate.functions import FUNCTIONS
from tunewatch.gotemplate.values import (
    KV,
    AlertList,
    GoTime,
    Pair,
    PairList,
    TemplateData,
    TemplateError,
    TemplateRenderError,
)

__all__ = ["FUNCTIONS", "KV", "AlertList", "GoTime", "Pair", "PairList", "Template", "TemplateData", "TemplateError",
           "TemplateLibrary", "TemplateRenderError"]  # fmt: skip
