"""Renderings of command results: Rich tables for people, JSON documents for ``--output json``."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from tunewatch.alert.model import format_time
from tunewatch.alert.rules import RuleSet
from tunewatch.cli.tables import Column, fitted_table
from tunewatch.evaluate.backtest import BacktestReport, RuleScore, alert_dims, fired_at, per_rule
from tunewatch.pipeline.replay import ReplaySummary
from tunewatch.validate.reasons import describe


def replay_summary_json(summary: ReplaySummary) -> dict[str, Any]:
    """The replay summary as a JSON-ready document (``replay --output json``)."""
    c = summary.counters
    return {
        "files": summary.files,
        "events": {"received": c.received, "accepted": c.accepted, "rejected": c.rejected,
                   "duplicates": c.duplicates, "accounted_for": c.balanced},
        "rejection_reasons": dict(c.reasons.most_common()),
        "windows": c.windows,
        "series": summary.series,
        "alerts": {"firing": c.alerts_firing, "resolved": c.alerts_resolved},
        "seconds": round(summary.seconds, 3),
        "events_per_second": round(summary.events_per_second, 1),
    }  # fmt: skip


def print_replay_summary(console: Console, summary: ReplaySummary) -> None:
    """Events accounting, top rejection reasons, alerts and throughput."""
    c = summary.counters
    table = Table(title="replay summary", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("events received", f"{c.received:,}")
    table.add_row("  accepted", f"{c.accepted:,} ({100 * c.success_rate:.2f}%)")
    table.add_row("  rejected", f"{c.rejected:,}")
    table.add_row("  duplicates", f"{c.duplicates:,}")
    table.add_row("accounted for", "yes" if c.balanced else Text("NO", "red"))
    table.add_row("windows (1 min)", f"{c.windows:,}")
    table.add_row("series watched", f"{summary.series:,}")
    table.add_row("alerts firing / resolved", f"{c.alerts_firing:,} / {c.alerts_resolved:,}")
    table.add_row("time", f"{summary.seconds:.2f} s")
    table.add_row("throughput", f"{summary.events_per_second:,.0f} events/s")
    console.print(table)
    if c.reasons:
        columns = [Column("reason", 26), Column("events", justify="right"), Column("meaning", 16, drop=1)]
        rows = [[reason, f"{n:,}", describe(reason)] for reason, n in c.reasons.most_common(8)]
        console.print(fitted_table(console, columns, rows, title="top rejection reasons"))


def _secs(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f} s"


def short_time(ms: int) -> str:
    """``01-05 14:03`` (UTC): date and minute, enough to find an incident in a day or two of history."""
    return format_time(ms)[5:16].replace("T", " ")


def compact_table(title: str) -> Table:
    """A borderless table that fits 80 columns: no edge padding, one space between columns."""
    return Table(
        title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0), title_justify="left"
    )


def _rule_scores(rules: RuleSet, summary: ReplaySummary, report: BacktestReport | None) -> dict[str, RuleScore]:
    incidents = [r.incident for r in report.incidents] if report is not None else None
    windows = (report.detect_within_ms, report.grace_ms) if report is not None else (5 * 60_000, 15 * 60_000)
    until = max((fired_at(a) for a in summary.alerts), default=None)
    return {
        s.rule: s
        for s in per_rule(
            summary.alerts, [r.alert for r in rules.rules], incidents, until_ms=until,
            detect_within_ms=windows[0], grace_ms=windows[1],
        )
    }  # fmt: skip


def backtest_json(rules: RuleSet, summary: ReplaySummary, report: BacktestReport | None) -> dict[str, Any]:
    """Per-rule results and, with labels, the incident scores as a JSON-ready document (``--output json``)."""
    scores = _rule_scores(rules, summary, report)
    document: dict[str, Any] = {"replay": replay_summary_json(summary), "rules": []}
    for r in rules.rules:
        sc = scores[r.alert]
        row: dict[str, Any] = {"rule": r.alert, "kind": r.kind, "metric": r.metric, "alerts": sc.alerts,
                               "firing_s": sc.firing_ms / 1000}  # fmt: skip
        if report is not None:
            row.update(right=sc.right, collateral=sc.collateral, false=sc.false, precision=sc.precision,
                       recall=sc.recall, detected=sc.detected, incidents=sc.incidents,
                       median_time_to_detect_s=sc.median_time_to_detect_s)  # fmt: skip
        document["rules"].append(row)
    if report is not None:
        document["incidents"] = [
            {"kind": res.incident.kind, "dims": res.incident.dims, "start": format_time(res.incident.start),
             "end": format_time(res.incident.end), "detected_by": res.detected_by,
             "time_to_detect_s": res.time_to_detect_s, "late_by": res.late_by, "late_s": res.late_s}
            for res in report.incidents
        ]  # fmt: skip
        document["scores"] = {
            "recall": report.recall, "late": report.late, "detect_within_s": report.detect_within_ms / 1000,
            "precision": report.precision,
            "median_time_to_detect_s": report.median_time_to_detect_s, "firing_alerts": report.firing,
            "right": report.right, "collateral": len(report.collateral), "false_alerts": len(report.false_alerts),
            "false_alert_groups": report.false_groups, "false_per_day": report.false_per_day,
        }  # fmt: skip
    return document


def print_backtest(console: Console, rules: RuleSet, summary: ReplaySummary, report: BacktestReport | None) -> None:
    """Per-rule table (alerts, firing time; with labels right/collateral/false alerts, incidents found, time to
    detect), the labelled incidents and the scores; readable in an 80-column terminal (kind and metric columns
    only when the terminal is wide enough for them)."""
    scores = _rule_scores(rules, summary, report)
    wide = console.width >= 120
    table = compact_table("rules on history")
    cols = ["rule", *(["kind", "metric"] if wide else []), "alerts", "firing"]
    if report is not None:
        cols += ["right", "coll.", "false", "found", "ttd"]
    for col in cols:
        left = col in ("rule", "kind", "metric")
        table.add_column(col, justify="left" if left else "right", no_wrap=not left or col == "rule", overflow="fold")
    for r in rules.rules:
        sc = scores[r.alert]
        row = [r.alert, *([r.kind, r.metric] if wide else []), str(sc.alerts), f"{sc.firing_ms / 60000:.0f}m"]
        if report is not None:
            row += [str(sc.right), str(sc.collateral), str(sc.false), f"{sc.detected}/{sc.incidents}",
                    _secs(sc.median_time_to_detect_s)]  # fmt: skip
        table.add_row(*row)
    console.print(table)
    if report is None:
        return
    console.print(
        "right: on the incident's own dimensions; coll.: during an incident, on other dimensions; false: outside "
        "every incident; found: incidents detected on their dimensions; ttd: median time to detect",
        style="dim", highlight=False,
    )  # fmt: skip
    inc = compact_table("labelled incidents")
    for col in ("kind", "dimensions", "start (UTC)", "detected by", "after"):
        inc.add_column(col, overflow="fold", justify="right" if col == "after" else "left")
    for res in report.incidents:
        dims = ", ".join(f"{k}={v}" for k, v in res.incident.dims.items()) or "global"
        if res.time_to_detect_s is not None:
            ttd = f"{res.time_to_detect_s:.0f} s"
        elif res.late_s is not None:
            ttd = f"[yellow]{res.late_s / 60:.0f}m late[/]"
        else:
            ttd = "[red]missed[/]"
        by = res.detected_by or res.late_by or "-"
        inc.add_row(escape(res.incident.kind), escape(dims), short_time(res.incident.start), by, ttd)
    console.print(inc)
    n_inc = len(report.incidents)
    found = sum(r.detected_by is not None for r in report.incidents)
    console.print(
        f"recall {100 * report.recall:.0f}% ({found}/{n_inc} on the right dimension within "
        f"{report.detect_within_ms / 60_000:g} min{f', {report.late} more later' if report.late else ''})  "
        f"precision {100 * report.precision:.0f}%  median time to detect {_secs(report.median_time_to_detect_s)}\n"
        f"firing alerts {report.firing}: right {report.right}, collateral {len(report.collateral)} "
        f"({report.collateral_per_incident:.1f} per incident), false alerts {len(report.false_alerts)} "
        f"({report.false_per_day:.1f}/day, {report.false_groups} groups)",
        highlight=False,
    )
    for label, alerts in (("collateral", report.collateral), ("false", report.false_alerts)):
        for a in alerts[:10]:
            dims = ", ".join(f"{k}={v}" for k, v in alert_dims(a).items()) or "global"
            console.print(escape(f"  {label}: {a.name} {dims} at {short_time(fired_at(a))}"), highlight=False)
        if len(alerts) > 10:
            console.print(f"  … and {len(alerts) - 10} more {label} alerts", highlight=False)
