"""The README's Python example runs as written, and its quick-start commands exist."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_python_example_runs() -> None:
    blocks = _python_blocks()
    assert blocks, "README has no python example"
    namespace: dict[str, object] = {"__name__": "readme_example"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(blocks[0], str(README), "exec"), namespace)
    valid = namespace["valid"]
    result = namespace["result"]
    cache = namespace["cache"]
    assert valid.accepted == 100 and valid.rejected_count == 1  # type: ignore[attr-defined]
    assert "market" in out.getvalue()
    skip = result.series("skip_rate", "market")  # type: ignore[attr-defined]
    assert skip.height == 1 and skip.row(0)[1] == "BR" and abs(skip.row(0)[2] - 0.25) < 1e-9
    stats = cache.stats()  # type: ignore[attr-defined]
    assert stats["sets"] > 0 and stats["entries"] > 0
    assert namespace["cached"]["market"] == ["BR"]  # type: ignore[index]


def test_quick_start_commands_are_make_targets() -> None:
    text = README.read_text(encoding="utf-8")
    head = text[: text.index("## Command line")]
    assert "make run" in head and "make test" in head
    makefile = (README.parent / "Makefile").read_text()
    assert re.search(r"^run:", makefile, flags=re.M) and re.search(r"^test:", makefile, flags=re.M)
    ci = (README.parent / ".ci" / "run").read_text()
    assert "make test" in ci
