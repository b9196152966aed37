"""``tunewatch dashboards``: write the Grafana dashboards (JSON) and their provisioning files.

A thin shell over :mod:`tunewatch.monitor.dashboards`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tunewatch.cli.feedback import user_errors
from tunewatch.cli.paths import output_dir
from tunewatch.monitor.dashboards import DEFAULT_PROMETHEUS, dashboards, export

app = typer.Typer(name="dashboards", help="Grafana dashboards for tunewatch's own metrics.", no_args_is_help=True)

out = Console()


@app.command("export")
def export_cmd(
    directory: Annotated[Path, typer.Argument(help="Output directory (created if missing).")],
    dashboards_path: Annotated[
        str | None,
        typer.Option(
            "--dashboards-path",
            help="Where Grafana reads the JSON files (default: DIRECTORY/dashboards as an absolute path).",
        ),
    ] = None,
    prometheus_url: Annotated[
        str, typer.Option("--prometheus-url", help="URL of the Prometheus data source Grafana provisions.")
    ] = DEFAULT_PROMETHEUS,
) -> None:
    """Write dashboards/*.json and provisioning/{dashboards,datasources}/tunewatch.yml under DIRECTORY."""
    with user_errors():
        output_dir(directory, "dashboards folder")
        written = export(directory, dashboards_path=dashboards_path, prometheus_url=prometheus_url)
    for path in written:
        out.print(str(path), highlight=False, markup=False)
    out.print(f"{len(written)} files written; point Grafana's provisioning directory at {directory / 'provisioning'}",
              highlight=False, markup=False)  # fmt: skip


@app.command("list")
def list_cmd() -> None:
    """List the dashboards with their uid and panel count."""
    table = Table(title="tunewatch dashboards")
    for col in ("file", "title", "panels"):
        table.add_column(col)
    for name, board in dashboards().items():
        panels = [p for p in board["panels"] if p["type"] != "row"]
        table.add_row(name, board["title"], str(len(panels)))
    out.print(table)
