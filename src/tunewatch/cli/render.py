"""Rich renderings of command results (tables and summaries)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tunewatch.alert.backtest import BacktestReport, fired_at, per_rule
from tunewatch.alert.model import format_time
from tunewatch.alert.rules import RuleSet
from tunewatch.pipeline.replay import ReplaySummary
from tunewatch.validate.reasons import describe


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
    table.add_row("accounted for", "yes" if c.balanced else "[red]NO[/]")
    table.add_row("windows (1 min)", f"{c.windows:,}")
    table.add_row("series watched", f"{summary.series:,}")
    table.add_row("alerts firing / resolved", f"{c.alerts_firing:,} / {c.alerts_resolved:,}")
    table.add_row("time", f"{summary.seconds:.2f} s")
    table.add_row("throughput", f"{summary.events_per_second:,.0f} events/s")
    console.print(table)
    if c.reasons:
        reasons = Table(title="top rejection reasons")
        reasons.add_column("reason")
        reasons.add_column("events", justify="right")
        reasons.add_column("meaning")
        for reason, n in c.reasons.most_common(8):
            reasons.add_row(escape(reason), f"{n:,}", escape(describe(reason)))
        console.print(reasons)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def _secs(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f} s"


def print_backtest(console: Console, rules: RuleSet, summary: ReplaySummary, report: BacktestReport | None) -> None:
    """Per-rule table (alerts, firing time; with labels precision, recall, time to detect) and the scores."""
    incidents = [r.incident for r in report.incidents] if report is not None else None
    windows = (report.detect_within_ms, report.grace_ms) if report is not None else (5 * 60_000, 15 * 60_000)
    until = max((fired_at(a) for a in summary.alerts), default=None)
    scores = {
        s.rule: s
        for s in per_rule(
            summary.alerts, [r.alert for r in rules.rules], incidents, until_ms=until,
            detect_within_ms=windows[0], grace_ms=windows[1],
        )
    }  # fmt: skip
    table = Table(title="rules on history")
    cols = ["rule", "kind", "metric", "alerts", "firing time"]
    if report is not None:
        cols += ["precision", "recall", "detected", "time to detect (median)"]
    for col in cols:
        table.add_column(col, justify="left" if col in ("rule", "kind", "metric") else "right")
    for r in rules.rules:
        sc = scores[r.alert]
        row = [r.alert, r.kind, r.metric, str(sc.alerts), f"{sc.firing_ms / 60000:.0f} min"]
        if report is not None:
            row += [_pct(sc.precision), _pct(sc.recall), f"{sc.detected}/{sc.incidents}",
                    _secs(sc.median_time_to_detect_s)]  # fmt: skip
        table.add_row(*row)
    console.print(table)
    if report is None:
        return
    inc = Table(title="labelled incidents")
    for col in ("kind", "dims", "start", "detected by", "time to detect"):
        inc.add_column(col)
    for res in report.incidents:
        dims = ", ".join(f"{k}={v}" for k, v in res.incident.dims.items()) or "global"
        ttd = f"{res.time_to_detect_s:.0f} s" if res.time_to_detect_s is not None else "[red]missed[/]"
        inc.add_row(
            escape(res.incident.kind), escape(dims), format_time(res.incident.start), res.detected_by or "-", ttd
        )
    console.print(inc)
    console.print(
        f"recall {100 * report.recall:.0f}%  precision {100 * report.precision:.0f}%  "
        f"firing alerts {report.firing}  false alerts {len(report.false_alerts)}  "
        f"false alert groups {report.false_groups} ({report.false_groups_per_day:.1f}/day)"
    )
    for a in report.false_alerts[:10]:
        console.print(escape(f"  false: {a.name} {a.labels} at {format_time(fired_at(a))}"), highlight=False)
