"""Alertmanager's API v2 (the subset amtool, Grafana's Alertmanager data source and Prometheus use), in its shapes.

``GET/POST /api/v2/alerts``, ``GET /api/v2/alerts/groups``, ``GET/POST /api/v2/silences``,
``GET/DELETE /api/v2/silence/{id}``, ``GET /api/v2/status`` and ``GET /api/v2/receivers``, over the same alert
log and silence store as ``/api/v1`` and the CLI: a silence made with ``amtool silence add`` mutes the service's
alerts and notifications. Scopes: ``read`` for GET, ``ingest`` to post alerts, ``admin`` for silence changes.
Errors are a JSON string, as Alertmanager answers them (so amtool prints the message).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from tunewatch.alert.model import Alert, Status, format_time
from tunewatch.errors import ConfigError
from tunewatch.notify.matchers import Matcher, matches_all, parse_matchers
from tunewatch.notify.silence import Silence, SilenceError
from tunewatch.security.keys import ApiKey
from tunewatch.server.routes.context import RouteContext, actor
from tunewatch.version import __version__

#: Alertmanager's default resolve_timeout: a firing alert's endsAt as shown, when it has none
SHOWN_RESOLVE_MS = 5 * 60_000


class MatcherV2(BaseModel):
    """One matcher as Alertmanager's API carries it."""

    name: str = Field(min_length=1, max_length=200)
    value: str = Field(max_length=1000)
    isRegex: bool
    isEqual: bool = True

    def matcher(self) -> Matcher:
        """The tunewatch matcher."""
        op = ("=~" if self.isEqual else "!~") if self.isRegex else ("=" if self.isEqual else "!=")
        return Matcher.make(self.name, op, self.value)  # type: ignore[arg-type]


class PostableSilence(BaseModel):
    """A silence to create (no ``id``) or change (``id``)."""

    model_config = ConfigDict(extra="ignore")
    id: str | None = Field(None, max_length=64)
    matchers: list[MatcherV2] = Field(min_length=1, max_length=20)
    startsAt: datetime
    endsAt: datetime
    createdBy: str = Field(min_length=1, max_length=200)
    comment: str = Field(min_length=1, max_length=1000)


class PostableAlert(BaseModel):
    """An alert posted by a client (Prometheus sends these)."""

    model_config = ConfigDict(extra="ignore")
    labels: dict[str, str] = Field(min_length=1)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime | None = None
    endsAt: datetime | None = None
    generatorURL: str = Field("", max_length=2000)


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse(message, status_code=status)


def _filter(values: list[str]) -> tuple[Matcher, ...]:
    """Matchers of ``filter`` query parameters (``alertname="x"`` or ``{a="b", c=~"d"}``)."""
    return parse_matchers(values) if values else ()


def matcher_json(m: Matcher) -> dict[str, Any]:
    """A tunewatch matcher in Alertmanager's shape."""
    return {"name": m.name, "value": m.value, "isRegex": m.op in ("=~", "!~"), "isEqual": m.op in ("=", "=~")}


def silence_json(s: Silence, now_ms: int) -> dict[str, Any]:
    """A silence as Alertmanager's ``gettableSilence``."""
    return {
        "id": s.id, "status": {"state": s.state(now_ms)}, "updatedAt": format_time(s.updated_at),
        "matchers": [matcher_json(m) for m in s.matchers], "startsAt": format_time(s.starts_at),
        "endsAt": format_time(s.ends_at), "createdBy": s.created_by, "comment": s.comment,
    }  # fmt: skip


def router(ctx: RouteContext) -> APIRouter:
    """Alertmanager API v2 routes."""
    service, notifier = ctx.service, ctx.notifier
    api = APIRouter(prefix="/api/v2", tags=["alertmanager"])

    def gettable(alerts: list[Alert], firing: list[Alert], now: int) -> list[tuple[Alert, dict[str, Any]]]:
        """``alerts`` in Alertmanager's shape; every ``firing`` alert is a potential inhibition source."""
        inhibition = notifier.inhibition(firing) if notifier is not None else None
        out = []
        for a in alerts:
            silenced = service.silenced_by(a, now)
            inhibited = inhibition.inhibited_by(a.labels, a.fingerprint) if inhibition is not None else []
            routes = notifier.routes_of(a.labels) if notifier is not None else []
            body = {
                "labels": a.labels, "annotations": a.annotations, "fingerprint": a.fingerprint,
                "startsAt": format_time(a.starts_at),
                "endsAt": format_time(a.ends_at if a.ends_at is not None else now + SHOWN_RESOLVE_MS),
                "updatedAt": format_time(int(a.extra.get("fired_at", a.starts_at)) if a.extra else a.starts_at),
                "receivers": [{"name": r} for r in dict.fromkeys(r for r, _ in routes)],
                "status": {"state": "suppressed" if silenced or inhibited else "active",
                           "silencedBy": silenced, "inhibitedBy": inhibited},
            }  # fmt: skip
            if a.generator_url:
                body["generatorURL"] = a.generator_url
            out.append((a, body))
        return out

    def selected(
        active: bool, silenced: bool, inhibited: bool, filter_: list[str], receiver: str | None
    ) -> list[tuple[Alert, dict[str, Any]]] | JSONResponse:
        try:
            wanted = _filter(filter_)
            by_receiver = Matcher.make("receiver", "=~", receiver) if receiver else None
        except ConfigError as exc:
            return _error(400, str(exc))
        now = service.now_ms()
        firing = service.active_alerts()
        out = []
        for a, body in gettable([a for a in firing if matches_all(wanted, a.labels)], firing, now):
            status = body["status"]
            if (not silenced and status["silencedBy"]) or (not inhibited and status["inhibitedBy"]):
                continue
            if not active and status["state"] == "active":
                continue
            if by_receiver is not None and not any(by_receiver.matches({"receiver": r["name"]})
                                                   for r in body["receivers"]):  # fmt: skip
                continue
            out.append((a, body))
        return out

    @api.get("/alerts", dependencies=[ctx.scope("read")])
    def get_alerts(
        active: bool = True,
        silenced: bool = True,
        inhibited: bool = True,
        unprocessed: bool = True,
        filter: Annotated[list[str], Query(max_length=20)] = [],  # noqa: B006 - FastAPI copies defaults
        receiver: Annotated[str | None, Query(max_length=200)] = None,
    ) -> Any:
        """Active alerts with their silences, inhibitions and receivers (Alertmanager's ``gettableAlerts``)."""
        found = selected(active, silenced, inhibited, filter, receiver)
        return found if isinstance(found, JSONResponse) else [body for _, body in found]

    @api.post("/alerts", responses={400: {"description": "bad alerts"}})
    def post_alerts(alerts: list[PostableAlert], key: ApiKey | None = ctx.scope("ingest")) -> Any:
        """Post alerts into tunewatch's routing (as Prometheus does to Alertmanager); re-post to keep one firing."""
        now = service.now_ms()
        taken = []
        for i, p in enumerate(alerts):
            starts = _ms(p.startsAt) if p.startsAt is not None else now
            ends = _ms(p.endsAt) if p.endsAt is not None else None
            if ends is not None and ends < starts:
                return _error(400, f"alerts[{i}]: endsAt is before startsAt")
            status: Status = "firing" if ends is None or ends > now else "resolved"
            taken.append(Alert(dict(p.labels), dict(p.annotations), status, starts, ends, p.generatorURL))
        service.post_alerts(taken)
        return Response(status_code=200)

    @api.get("/alerts/groups", dependencies=[ctx.scope("read")])
    def get_groups(
        active: bool = True,
        silenced: bool = True,
        inhibited: bool = True,
        filter: Annotated[list[str], Query(max_length=20)] = [],  # noqa: B006
        receiver: Annotated[str | None, Query(max_length=200)] = None,
    ) -> Any:
        """Active alerts by notification group (receiver and group labels), as Alertmanager groups them."""
        found = selected(active, silenced, inhibited, filter, receiver)
        if isinstance(found, JSONResponse):
            return found
        groups: dict[tuple[str, tuple[tuple[str, str], ...]], list[dict[str, Any]]] = {}
        for a, body in found:
            routes = notifier.routes_of(a.labels) if notifier is not None else [("tunewatch", {})]
            for name, labels in routes:
                groups.setdefault((name, tuple(sorted(labels.items()))), []).append(body)
        return [{"labels": dict(labels), "receiver": {"name": name}, "alerts": alerts}
                for (name, labels), alerts in groups.items()]  # fmt: skip

    @api.get("/silences", dependencies=[ctx.scope("read")])
    def get_silences(filter: Annotated[list[str], Query(max_length=20)] = []) -> Any:  # noqa: B006
        """Every silence; with ``filter``, those whose matchers (as labels) satisfy every filter matcher."""
        try:
            wanted = _filter(filter)
        except ConfigError as exc:
            return _error(400, str(exc))
        now = service.now_ms()
        return [silence_json(s, now) for s in service.list_silences() if _silence_matches(s, wanted)]

    @api.post("/silences", responses={400: {"description": "bad silence"}, 404: {"description": "no such silence"}})
    def post_silence(body: PostableSilence, request: Request, key: ApiKey | None = ctx.scope("admin")) -> Any:
        """Create a silence, or change the one with ``id`` (as Alertmanager: in place, or expired and replaced)."""
        try:
            matchers = tuple(m.matcher() for m in body.matchers)
            fields: dict[str, Any] = {
                "starts_at": _ms(body.startsAt), "ends_at": _ms(body.endsAt), "created_by": body.createdBy,
                "comment": body.comment, "actor": actor(key, request), "via": "http",
            }  # fmt: skip
            if body.id:
                silence = service.update_silence(body.id, matchers, **fields)
            else:
                silence = service.add_silence(matchers, **fields)
        except SilenceError as exc:
            return _error(404 if str(exc).startswith("no silence") else 400, str(exc))
        except (ConfigError, ValueError, OverflowError, OSError) as exc:
            return _error(400, str(exc))
        return {"silenceID": silence.id}

    @api.get("/silence/{silence_id}", dependencies=[ctx.scope("read")])
    def get_silence(silence_id: Annotated[str, Path(max_length=64)]) -> Any:
        """One silence by id."""
        found = [s for s in service.list_silences() if s.id == silence_id]
        if not found:
            return _error(404, f"no silence with id {silence_id!r}")
        return silence_json(found[0], service.now_ms())

    @api.delete("/silence/{silence_id}", responses={404: {"description": "no such silence"}})
    def delete_silence(
        silence_id: Annotated[str, Path(max_length=64)], request: Request, key: ApiKey | None = ctx.scope("admin")
    ) -> Any:
        """Expire a silence now."""
        if not any(s.id == silence_id for s in service.list_silences()):
            return _error(404, f"no silence with id {silence_id!r}")
        try:
            service.expire_silence(silence_id, actor=actor(key, request), via="http")
        except SilenceError as exc:
            return _error(500, str(exc))  # already expired: what Alertmanager answers
        return Response(status_code=200)

    @api.get("/status", dependencies=[ctx.scope("read")])
    def status() -> dict[str, Any]:
        """Version, uptime and configuration (the notification config's text), as Alertmanager's status."""
        original = ""
        if ctx.settings.notify_config is not None:
            try:
                original = ctx.settings.notify_config.read_text(encoding="utf-8")
            except OSError:
                original = ""
        return {
            "cluster": {"status": "disabled", "peers": []},
            "config": {"original": original},
            "uptime": format_time(int(service.started * 1000)),
            "versionInfo": {"version": __version__, "branch": "", "revision": "", "buildUser": "tunewatch",
                            "buildDate": "", "goVersion": "none (tunewatch, Python)"},
        }  # fmt: skip

    @api.get("/receivers", dependencies=[ctx.scope("read")])
    def receivers() -> list[dict[str, str]]:
        """The configured receivers' names."""
        return [{"name": r.name} for r in notifier.config.receivers] if notifier is not None else []

    return api


def _silence_matches(silence: Silence, wanted: tuple[Matcher, ...]) -> bool:
    """Alertmanager's silence filter: the silence's matchers read as labels (name: value) satisfy every filter."""
    if not wanted:
        return True
    labels: Mapping[str, str] = {m.name: m.value for m in silence.matchers}
    return matches_all(wanted, labels)
