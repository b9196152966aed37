"""Exception hierarchy: every error tunewatch raises on purpose derives from :class:`TunewatchError`."""

from __future__ import annotations


class TunewatchError(Exception):
    """Base of all tunewatch errors; the message is meant for the user."""


class InputError(TunewatchError):
    """An input file or payload cannot be used at all (missing, unknown format, binary, empty)."""


class ConfigError(TunewatchError):
    """A configuration or rule file is invalid."""
