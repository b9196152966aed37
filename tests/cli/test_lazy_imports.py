"""`tunewatch --help` loads the command modules only: the alert stack (SciPy, Numba) is imported by the commands
that use it, when they run."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("numba", "scipy", "tunewatch.alert", "tunewatch.notify", "tunewatch.pipeline", "tunewatch.quarantine",
         "tunewatch.monitor", "tunewatch.simulate", "redis")  # fmt: skip


def _loaded_after(code: str) -> list[str]:
    probe = f"import sys, json; {code}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout
    return [m for m in json.loads(out.splitlines()[-1]) if m.split(".")[0] in HEAVY or m.startswith(HEAVY)]


def test_the_command_line_loads_no_heavy_module_before_a_command_runs() -> None:
    assert _loaded_after("import tunewatch.cli.main") == []


def test_help_prints_every_command_without_loading_them() -> None:
    code = (
        "from typer.testing import CliRunner; from tunewatch.cli.main import app; "
        "r = CliRunner().invoke(app, ['--help'], env={'COLUMNS': '200'}); "
        "assert r.exit_code == 0 and all(c in r.output for c in ('replay', 'serve', 'quarantine', 'keys', 'audit'))"
    )
    assert _loaded_after(code) == []
