"""Every public class of the library API carries a runnable example in its docstring (run by --doctest-modules).

The library API: what ``tunewatch/__init__.py`` exports, the error hierarchy, the clock, and the public classes
of the stages and services a program uses directly (validate, process, detect, alert, cache, monitor,
security) and of evaluate.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "tunewatch"
PACKAGES = ("validate", "process", "detect", "alert", "cache", "monitor", "security", "evaluate")
MODULES = ("errors.py", "clock.py")


def _public_classes(path: Path) -> list[tuple[str, bool]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        (node.name, ">>>" in (ast.get_docstring(node) or ""))
        for node in tree.body
        if isinstance(node, ast.ClassDef) and not node.name.startswith("_")
    ]


def test_every_public_class_of_the_library_api_has_an_example() -> None:
    files = [SRC / m for m in MODULES] + [p for pkg in PACKAGES for p in sorted((SRC / pkg).rglob("*.py"))]
    checked, missing = 0, []
    for path in files:
        rel = path.relative_to(SRC).as_posix()
        for name, has_example in _public_classes(path):
            checked += 1
            if not has_example:
                missing.append(f"{rel}:{name}")
    assert checked > 80
    assert not missing, "public classes without a '>>>' example in their docstring: " + ", ".join(missing)
