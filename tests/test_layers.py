"""The layering of src/tunewatch holds: no module imports from a layer above its own, none imports the face.

The contracts live in pyproject.toml (``[tool.importlinter]``) and ``make lint`` checks them too; this test
keeps back-arrows out even where only the suite is run.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest
from importlinter.cli import lint_imports

from tunewatch.version import __version__

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept(capsys: pytest.CaptureFixture[str]) -> None:
    code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True)
    assert code == 0, capsys.readouterr().out


def test_version_module_matches_the_installed_metadata() -> None:
    import tunewatch

    assert tunewatch.__version__ == __version__ == importlib.metadata.version("tunewatch")
