"""Exception hierarchy: every error tunewatch raises on purpose derives from :class:`TunewatchError`."""

from __future__ import annotations


class TunewatchError(Exception):
    """Base of all tunewatch errors; the message is meant for the user.

    >>> try:
    ...     raise ConfigError("rules.yaml: rule 'FailuresUp': for: not a duration")
    ... except TunewatchError as exc:  # one except clause catches every error tunewatch raises on purpose
    ...     str(exc)
    "rules.yaml: rule 'FailuresUp': for: not a duration"
    """


class InputError(TunewatchError):
    """An input file or payload cannot be used at all (missing, unknown format, binary, empty).

    >>> from tunewatch.ingest.readers import read_events
    >>> try:
    ...     next(read_events("/nonexistent/day.ndjson"))
    ... except InputError as exc:
    ...     "/nonexistent/day.ndjson" in str(exc)
    True
    """


class ConfigError(TunewatchError):
    """A configuration or rule file is invalid.

    >>> from tunewatch.alert.rules import parse_rules
    >>> try:
    ...     parse_rules("groups: [{name: g, rules: [{alert: A, metric: no_such_metric}]}]")
    ... except ConfigError as exc:
    ...     "no_such_metric" in str(exc)
    True
    """
