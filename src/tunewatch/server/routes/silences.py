"""``/api/v1/silences``: create, list and expire silences of the service's one silence store."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request

from tunewatch.errors import ConfigError
from tunewatch.notify.config import parse_duration_ms
from tunewatch.notify.matchers import parse_matchers
from tunewatch.notify.silence import SilenceError
from tunewatch.security.keys import ApiKey
from tunewatch.server.models import SilenceIn, SilenceOut
from tunewatch.server.routes.context import RouteContext, actor


def duration_ms(text: str) -> int:
    """A positive duration such as ``2h`` in ms; :class:`SilenceError` naming ``duration`` otherwise."""
    try:
        ms = parse_duration_ms(text)
    except ValueError as exc:
        raise SilenceError(f"duration: {exc}") from exc
    if ms <= 0:
        raise SilenceError("duration: must be positive")
    return ms


def router(ctx: RouteContext) -> APIRouter:
    """Silence routes (v1: string matchers)."""
    service = ctx.service
    api = APIRouter(tags=["silences"])

    @api.get("/api/v1/silences", dependencies=[ctx.scope("read")])
    def list_silences() -> list[SilenceOut]:
        """Every silence (pending, active, expired), newest first."""
        now = service.now_ms()
        return [SilenceOut.of(s, now) for s in service.list_silences()]

    @api.post("/api/v1/silences", status_code=201, responses={400: {"description": "bad matchers or times"}})
    def create_silence(body: SilenceIn, request: Request, key: ApiKey | None = ctx.scope("admin")) -> SilenceOut:
        """Create a silence: alerts whose labels match every matcher are muted until it ends.

        A silence lasts at most ``max_silence`` (30 days by default) and starts at most that far ahead.
        """
        try:
            matchers = parse_matchers(body.matchers)
            now = service.now_ms()
            starts = int(body.starts_at.timestamp() * 1000) if body.starts_at is not None else now
            if body.ends_at is not None and body.duration is not None:
                raise SilenceError("give duration or ends_at, not both")
            if body.ends_at is not None:
                ends = int(body.ends_at.timestamp() * 1000)
            else:
                ends = starts + duration_ms(body.duration or "1h")
            silence = service.add_silence(
                matchers, starts_at=starts, ends_at=ends, created_by=body.created_by, comment=body.comment,
                actor=actor(key, request), via="http",
            )  # fmt: skip
        except (ConfigError, SilenceError, ValueError, OverflowError, OSError) as exc:
            raise HTTPException(400, str(exc)) from exc
        return SilenceOut.of(silence, service.now_ms())

    @api.delete(
        "/api/v1/silences/{silence_id}",
        responses={404: {"description": "no such silence"}, 409: {"description": "already expired"}},
    )
    def expire_silence(
        silence_id: Annotated[str, Path(max_length=64)], request: Request, key: ApiKey | None = ctx.scope("admin")
    ) -> SilenceOut:
        """Expire a silence now (id or unique id prefix)."""
        try:
            silence = service.expire_silence(silence_id, actor=actor(key, request), via="http")
        except SilenceError as exc:
            raise HTTPException(409 if "already expired" in str(exc) else 404, str(exc)) from exc
        return SilenceOut.of(silence, service.now_ms())

    return api
