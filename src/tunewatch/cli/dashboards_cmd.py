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
        str | None,
        typer.Option(
            "--prometheus-url",
            help="URL of the Prometheus data source Grafana provisions (default: http://localhost:9090).",
        ),
    ] = None,
) -> None:
    """Write dashboards/*.json and provisioning/{dashboards,datasources}/tunewatch.yml under DIRECTORY."""
    from tunewatch.monitor.dashboards import DEFAULT_PROMETHEUS, export  # lazy: `tunewatch --help` stays fast

    with user_errors():
        output_dir(directory, "dashboards folder")
        url = prometheus_url if prometheus_url is not None else DEFAULT_PROMETHEUS
        written = export(directory, dashboards_path=dashboards_path, prometheus_url=url)
    for path in written:
        out.print(str(path), highlight=False, markup=False)
    out.print(f"{len(written)} files written; point Grafana's provisioning directory at {directory / 'provisioning'}",
              highlight=False, markup=False)  # fmt: skip


@app.command("list")
def list_cmd() -> None:
    """List the dashboards with their uid and panel count."""
    from tunewatch.monitor.dashboards import dashboards

    table = Table(title="tunewatch dashboards")
    for col in ("file", "title", "panels"):
        table.add_column(col)
    for name, board in dashboards().items():
        panels = [p for p in board["panels"] if p["type"] != "row"]
        table.add_row(name, board["title"], str(len(panels)))
    out.print(table)
