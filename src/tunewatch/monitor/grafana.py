"""A small builder of Grafana dashboard JSON models (schema 39): panels placed on the 24-column grid.

Panels query a Prometheus data source chosen by the dashboard's ``datasource`` variable, so a provisioned
dashboard works against whichever Prometheus the Grafana instance calls by that uid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

SCHEMA_VERSION: Final = 39
DATASOURCE_UID: Final = "tunewatch-prometheus"
DS: Final = {"type": "prometheus", "uid": "${datasource}"}
_GRID_COLUMNS: Final = 24

Json = dict[str, Any]


@dataclass
class Board:
    """Accumulates panels left to right, top to bottom, on Grafana's 24-column grid.

    >>> b = Board("demo", "Demo", "a demo board")
    >>> b.panel("Events", [("sum(rate(tunewatch_events_total[5m]))", "events/s")], w=16)
    >>> b.panel("Rejected", [("sum(tunewatch_rejections_total)", "rejected")], w=16)
    >>> [p["gridPos"] for p in b.model()["panels"]]
    [{'x': 0, 'y': 0, 'w': 16, 'h': 8}, {'x': 0, 'y': 8, 'w': 16, 'h': 8}]
    """

    uid: str
    title: str
    description: str
    variables: list[Json] = field(default_factory=list)
    panels: list[Json] = field(default_factory=list)
    _x: int = 0
    _y: int = 0
    _row_h: int = 0

    def row(self, title: str) -> None:
        """Start a new titled row."""
        self._newline()
        self.panels.append(
            {
                "id": len(self.panels) + 1,
                "type": "row",
                "title": title,
                "collapsed": False,
                "panels": [],
                "gridPos": {"x": 0, "y": self._y, "w": _GRID_COLUMNS, "h": 1},
            }
        )
        self._y += 1

    def panel(
        self,
        title: str,
        targets: list[tuple[str, str]],
        *,
        kind: str = "timeseries",
        unit: str = "short",
        w: int = 12,
        h: int = 8,
        description: str = "",
        thresholds: list[tuple[float | None, str]] | None = None,
        overrides: list[Json] | None = None,
    ) -> None:
        """Add a panel whose targets are ``(PromQL, legend)`` pairs; ``overrides`` are Grafana field overrides."""
        if self._x + w > _GRID_COLUMNS:
            self._newline()
        steps = [{"value": v, "color": c} for v, c in (thresholds or [(None, "green")])]
        self.panels.append(
            {
                "id": len(self.panels) + 1,
                "type": kind,
                "title": title,
                "description": description,
                "datasource": DS,
                "gridPos": {"x": self._x, "y": self._y, "w": w, "h": h},
                "targets": [
                    {
                        "refId": chr(ord("A") + i),
                        "datasource": DS,
                        "expr": expr,
                        "legendFormat": legend,
                        "instant": kind in ("stat", "gauge", "table", "bargauge"),
                        "range": kind == "timeseries",
                    }
                    for i, (expr, legend) in enumerate(targets)
                ],
                "fieldConfig": {
                    "defaults": {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps}},
                    "overrides": list(overrides or []),
                },
                "options": _options(kind),
            }
        )
        self._x += w
        self._row_h = max(self._row_h, h)

    def _newline(self) -> None:
        self._y += self._row_h
        self._x = 0
        self._row_h = 0

    def model(self) -> Json:
        """The Grafana dashboard JSON model."""
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": ["tunewatch"],
            "timezone": "utc",
            "schemaVersion": SCHEMA_VERSION,
            "version": 1,
            "editable": True,
            "graphTooltip": 1,
            "refresh": "30s",
            "time": {"from": "now-6h", "to": "now"},
            "annotations": {"list": []},
            "links": [{"title": "tunewatch", "type": "dashboards", "tags": ["tunewatch"], "asDropdown": True}],
            "templating": {"list": [datasource_variable(), *self.variables]},
            "panels": self.panels,
        }


def override(name: str, **properties: Any) -> Json:
    """A field override of the series named ``name`` (its legend), e.g. ``fillBelowTo="lower"``.

    >>> override("upper", fillBelowTo="lower")["properties"]
    [{'id': 'custom.fillBelowTo', 'value': 'lower'}]
    """
    props = [{"id": k if k in ("color", "unit") else f"custom.{k}", "value": v} for k, v in properties.items()]
    return {"matcher": {"id": "byName", "options": name}, "properties": props}


def query_variable(name: str, label: str, query: str, *, include_all: bool = False) -> Json:
    """A template variable whose values come from a ``label_values(...)`` query (``.*`` for "All")."""
    var: Json = {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "query": {"query": query, "refId": name},
        "definition": query,
        "refresh": 2,
        "multi": False,
        "includeAll": include_all,
        "sort": 1,
    }
    if include_all:
        var["allValue"] = ".*"
        var["current"] = {"text": "All", "value": "$__all"}
    return var


def _options(kind: str) -> Json:
    if kind == "timeseries":
        return {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}}
    if kind == "table":
        return {"showHeader": True}
    return {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, "colorMode": "value"}


def datasource_variable() -> Json:
    """The ``datasource`` template variable every panel refers to (defaults to the provisioned uid)."""
    return {
        "name": "datasource",
        "label": "Prometheus",
        "type": "datasource",
        "query": "prometheus",
        "current": {"text": "Prometheus", "value": DATASOURCE_UID},
        "hide": 0,
    }
