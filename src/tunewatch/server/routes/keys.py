"""``/api/v1/keys``: list and revoke API keys (admin scope)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request

from tunewatch.security.keys import ApiKey, ApiKeyError
from tunewatch.server.routes.context import RouteContext, actor


def router(ctx: RouteContext) -> APIRouter:
    """API-key routes."""
    service = ctx.service
    api = APIRouter(tags=["keys"])

    @api.get("/api/v1/keys", dependencies=[ctx.scope("admin")])
    def list_keys() -> list[dict[str, Any]]:
        """Every API key's public record (id, name, scopes, times; never a secret)."""
        return [
            {"id": k.id, "name": k.name, "scopes": sorted(k.scopes), "created_ms": k.created_ms,
             "revoked_ms": k.revoked_ms}
            for k in service.keys.list()
        ]  # fmt: skip

    @api.delete(
        "/api/v1/keys/{key_id}",
        responses={404: {"description": "no such key"}, 409: {"description": "already revoked"}},
    )
    def revoke_key(
        key_id: Annotated[str, Path(max_length=64)], request: Request, key: ApiKey | None = ctx.scope("admin")
    ) -> dict[str, Any]:
        """Revoke an API key: the next request with it is refused (401), in this process and every other."""
        try:
            revoked = service.keys.revoke(key_id, now_ms=int(time.time() * 1000))
        except ApiKeyError as exc:
            raise HTTPException(409 if "already revoked" in str(exc) else 404, str(exc)) from exc
        service.audit(actor(key, request), "api_key.revoke", revoked.id, name=revoked.name, via="http")
        return {"id": revoked.id, "name": revoked.name, "revoked_ms": revoked.revoked_ms}

    return api
