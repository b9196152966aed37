"""``/api/v1/rules``: the rules in force, and reloading the rule file."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request

from tunewatch.errors import ConfigError
from tunewatch.security.keys import ApiKey
from tunewatch.server.routes.context import RouteContext, actor


def router(ctx: RouteContext) -> APIRouter:
    """Rule routes."""
    service = ctx.service
    api = APIRouter(tags=["rules"])

    @api.get("/api/v1/rules", dependencies=[ctx.scope("read")])
    def rules() -> list[dict[str, Any]]:
        """The rules in force, by group."""
        return [{"group": g.name, **r.model_dump(mode="json")} for g in service.pipeline.rules.groups for r in g.rules]

    @api.post(
        "/api/v1/rules/reload",
        responses={422: {"description": "the rule file is invalid; the old rules stay in force"}},
    )
    def reload_rules(request: Request, key: ApiKey | None = ctx.scope("admin")) -> dict[str, Any]:
        """Reload the rule file; detectors restart their warm-up."""
        who = actor(key, request)
        target = str(service.rules_path or "built-in")
        try:
            ruleset = service.reload_rules()
        except ConfigError as exc:
            service.audit(who, "rules.reload", target, outcome="refused", via="http")
            raise HTTPException(422, str(exc)) from exc
        service.audit(who, "rules.reload", target, rules=len(ruleset.rules), via="http")
        return {"status": "reloaded", "rules": len(ruleset.rules)}

    return api
