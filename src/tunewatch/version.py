"""The version of tunewatch, kept in one low-level module so any layer can report it (``/metrics``, the API, the CLI).

It must equal ``project.version`` in ``pyproject.toml`` (a test checks the installed metadata against it).

>>> __version__.count(".") >= 2
True
"""

__version__ = "0.1.0"
