"""Alerts printed by `serve`/`run`: explanations shown, hostile annotation text kept inert (no markup)."""

from __future__ import annotations

import pytest
from rich.console import Console

from tunewatch.alert.model import Alert
from tunewatch.cli import serve_cmd
from tunewatch.simulate.live_clock import SimulatedClock


def test_hostile_text_is_printed_literally_with_its_explanations(monkeypatch: pytest.MonkeyPatch) -> None:
    console = Console(record=True, width=200, color_system=None)
    monkeypatch.setattr(serve_cmd, "console", console)
    alert = Alert(
        labels={"alertname": "PlaybackFailuresUp", "market": "[bold]BR[/bold]"},
        annotations={
            "summary": "failures [link=https://evil.example]click[/link] up",
            "top_contributors": "market=BR, cdn=edge-2: 50% vs 1%",
            "top_rejection_reasons": "market: unknown_country (12)",
            "track_name": "Coastline Lights",
            "track_artists": "Neon Harbor",
        },
        status="firing",
        starts_at=0,
    )
    serve_cmd.print_alert(alert)
    text = console.export_text()
    assert "[link=https://evil.example]click[/link]" in text
    assert "market=[bold]BR[/bold]" in text
    assert "top contributors: market=BR, cdn=edge-2" in text
    assert "top rejection reasons: market: unknown_country (12)" in text
    assert "track: Coastline Lights by Neon Harbor" in text


def test_run_labels_alert_lines_with_their_simulated_time(monkeypatch: pytest.MonkeyPatch) -> None:
    console = Console(record=True, width=200, color_system=None)
    monkeypatch.setattr(serve_cmd, "console", console)
    alert = Alert(labels={"alertname": "PlaysDrop", "market": "BR"}, annotations={"summary": "plays down"},
                  status="firing", starts_at=0)  # fmt: skip
    clock = SimulatedClock(1_767_607_380, speed=2.0, wall=lambda: 0.0)
    sink = serve_cmd._alert_sink(clock)
    sink(alert)
    assert console.export_text().splitlines()[0].startswith("sim 2026-01-05 10:03 FIRING   PlaysDrop (market=BR)")
    # the alert itself says so too (notifications, console, API)
    assert alert.annotations["simulated_clock"].startswith("times are simulated (tunewatch run, 120x the wall clock)")
