"""``pip install tunewatch`` (no extras) gives a working library: ``import tunewatch`` and the README's Python example
run, and the file commands work; a command that needs an extra says which one.

Which packages the extras add is read from the installed package's own metadata (the closure of each extra's
requirements less the closure of the core requirements); a child Python then runs with every one of them made
unimportable, exactly as in an environment where they were never installed.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.conftest import BASE_MS, make_play

ROOT = Path(__file__).resolve().parents[1]
EXTRAS = ("server", "redis", "integrations")


def _closure(requirements: list[Requirement], extras: set[str]) -> set[str]:
    """Distribution names needed by ``requirements`` (with ``extras`` of the root), transitively."""
    seen: set[str] = set()
    todo = [(r, extras) for r in requirements]
    while todo:
        req, active = todo.pop()
        if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in (active or {""})):
            continue
        name = req.name.lower().replace("_", "-")
        if name in seen or name == "tunewatch":
            if name == "tunewatch":  # a self-reference such as all = ["tunewatch[server,...]"]
                todo += [(r, set(req.extras)) for r in _requires("tunewatch")]
            continue
        seen.add(name)
        todo += [(r, set(req.extras)) for r in _requires(name)]
    return seen


def _requires(dist: str) -> list[Requirement]:
    try:
        return [Requirement(r) for r in md.requires(dist) or []]
    except md.PackageNotFoundError:
        return []


def _modules_of(dists: set[str]) -> set[str]:
    by_dist: dict[str, set[str]] = {}
    for module, names in md.packages_distributions().items():
        for name in names:
            by_dist.setdefault(name.lower().replace("_", "-"), set()).add(module)
    return {m for d in dists for m in by_dist.get(d, set()) if not m.startswith("_")}


def extra_only_modules() -> set[str]:
    core = _closure(_requires("tunewatch"), set())
    extra = _closure(_requires("tunewatch"), set(EXTRAS)) - core
    return _modules_of(extra)


BLOCKER = """
import importlib.abc, sys
BLOCKED = set({blocked!r})
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, Blocker())
"""


def _run_without_extras(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    script = BLOCKER.format(blocked=sorted(extra_only_modules())) + textwrap.dedent(code)
    env = {"PATH": "/usr/bin:/bin", "TUNEWATCH_HOME": str(tmp_path / "home"), "HOME": str(tmp_path)}
    return subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=240, check=False)  # fmt: skip


def test_the_extras_hold_the_server_redis_and_integration_packages() -> None:
    blocked = extra_only_modules()
    assert {"fastapi", "uvicorn", "starlette", "redis", "spotipy", "requests", "polars_hash", "slack_sdk"} <= blocked
    assert not {"polars", "numpy", "typer", "rich", "httpx", "yaml"} & blocked  # the core stays


@pytest.mark.slow
def test_library_and_readme_example_without_extras(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    example = readme.split("```python\n", 1)[1].split("```", 1)[0]
    result = _run_without_extras(
        f"""
        import sys
        import tunewatch
        for name in tunewatch.__all__:
            getattr(tunewatch, name)
        namespace = {{"__name__": "readme"}}
        exec(compile({example!r}, "README.md", "exec"), namespace)
        assert namespace["valid"].accepted == 100
        import tunewatch.alert.engine, tunewatch.detect.stage, tunewatch.notify, tunewatch.pipeline.replay
        print("OK", sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED))
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "OK []"


@pytest.mark.slow
def test_file_commands_run_and_service_commands_name_their_extra(tmp_path: Path) -> None:
    events = tmp_path / "day.ndjson"
    events.write_text("".join(json.dumps(make_play(i, BASE_MS + i * 1000)) + "\n" for i in range(200)))
    result = _run_without_extras(
        """
        import sys
        from tunewatch.cli.main import run
        sys.argv = ["tunewatch", *sys.argv[1:]]
        for args in (["replay", "day.ndjson", "-q", "--output", "json", "--alerts-out", "a.ndjson"],
                     ["serve", "--port", "1"], ["cluster", "publish", "day.ndjson"],
                     ["metadata", "export-alerts", "a.ndjson", "--out", "a.csv"]):
            sys.argv = ["tunewatch", *args]
            try:
                run()
            except SystemExit as exc:
                print("EXIT", args[0], exc.code, flush=True)
        """,
        tmp_path,
    )
    exits = [line.split()[1:] for line in result.stdout.splitlines() if line.startswith("EXIT")]
    assert exits == [["replay", "0"], ["serve", "2"], ["cluster", "2"], ["metadata", "2"]], result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: this needs the uvicorn package: install it with pip install 'tunewatch[server]'",
        "error: this needs the redis package: install it with pip install 'tunewatch[redis]'",
        "error: this needs the polars_hash package: install it with pip install 'tunewatch[integrations]'",
    ], result.stderr
    assert "Traceback" not in result.stderr
