"""Optional parts of tunewatch and the packages they need (``pip install 'tunewatch[EXTRA]'``).

``pip install tunewatch`` gives the library — validate, process, detect, alert, notify (email, webhook,
Alertmanager) — and the commands that run on files (``replay``, ``backtest``, ``simulate``, ``rules``,
``silences``, ``keys``, ``quarantine``, ``audit``, ``dashboards``, ``bench``). The extras add:

* ``server``: the HTTP service (``serve``, ``run``; FastAPI, uvicorn), Slack notifications (slack-sdk) and
  profiling (pyinstrument);
* ``redis``: the Redis / Redis Cluster cache tier and distributed mode (``cluster``; redis-py);
* ``integrations``: Spotify Web API metadata (spotipy, requests) and the Spotify / Last.fm importers and
  exporters (``metadata``; polars-hash);
* ``all``: every extra.

>>> extra_for("uvicorn.config"), extra_for("spotipy"), extra_for("numpy")
('server', 'integrations', None)
"""

from __future__ import annotations

from typing import Final

PACKAGES: Final[dict[str, tuple[str, ...]]] = {
    "server": ("fastapi", "starlette", "uvicorn", "slack_sdk", "pyinstrument"),
    "redis": ("redis",),
    "integrations": ("spotipy", "requests", "polars_hash"),
}


def extra_for(module: str | None) -> str | None:
    """The extra that installs top-level package of ``module``, if it belongs to one."""
    if not module:
        return None
    top = module.split(".")[0]
    return next((extra for extra, packages in PACKAGES.items() if top in packages), None)


def missing_extra_message(module: str | None) -> str | None:
    """A one-line message naming the extra that provides ``module``; None if it is not an optional package."""
    extra = extra_for(module)
    if extra is None:
        return None
    return f"this needs the {module!s} package: install it with pip install 'tunewatch[{extra}]'"
