"""The runnable examples in the integrations' docstrings."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "tunewatch.integrations.errors",
    "tunewatch.integrations.redact",
    "tunewatch.integrations.spotify",
    "tunewatch.integrations.metadata",
    "tunewatch.integrations.formats.result",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0
    assert result.failed == 0
