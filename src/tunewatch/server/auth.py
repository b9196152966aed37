"""Access control for the HTTP API: rate limits and, when auth is on, an API key with the right scope.

Keys are read from ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. Without a key: 401; a key without
the scope: 403; over a rate limit (per client address, per key, failed authentications per address): 429 with
``Retry-After``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from fastapi import HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from tunewatch.security.keys import ApiKey, ApiKeyStore, LegacyCheckBusy, LegacyKey, Scope
from tunewatch.security.ratelimit import RateLimiter, RateLimitExceeded

#: Documented in OpenAPI (so that /docs can send a key); the check itself reads the headers directly.
BEARER = HTTPBearer(auto_error=False, description="API key as a bearer token.")
API_KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key.")


def _token(headers: Mapping[str, str]) -> str | None:
    header = headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = headers.get("x-api-key")
    return key.strip() if key and key.strip() else None


def _too_many(refused: RateLimitExceeded, what: str) -> HTTPException:
    wait = refused.retry_after_s
    return HTTPException(
        429, f"{what} ({refused.limit} per {refused.scope}); retry in {wait} s", headers={"Retry-After": str(wait)}
    )


class AccessControl:
    """Admits or refuses requests (raises :class:`fastapi.HTTPException` with 401, 403 or 429).

    Order, cheapest and most general first: the per-address limit; then, with auth on, the address's failed
    authentications (refused before the key is even looked at), the key (microseconds, the same for every
    key), its scope and the per-key limit.
    """

    def __init__(self, *, auth: bool, keys: ApiKeyStore, limiter: RateLimiter) -> None:
        self.auth = auth
        self.keys = keys
        self.limiter = limiter

    async def refuse_early(self, address: str | None) -> HTTPException | None:
        """With auth on, the 429 for an address over its failed-authentication limit (None otherwise): checked
        before routing, so that a flood of bad keys costs the service as little as possible."""
        if not self.auth or not self.limiter.auth_failures:
            return None
        blocked = await self.limiter.auth_blocked(address)
        return _too_many(blocked, "too many failed authentications from this address") if blocked else None

    async def admit(
        self, scope: Scope, headers: Mapping[str, str], address: str | None, *, failures_checked: bool = False
    ) -> ApiKey | None:
        """Check a request needing ``scope``; return its key (None when auth is off).

        ``failures_checked``: the caller has just asked :meth:`refuse_early` for this address (the ingest fast
        path), so the failed-authentication limit is not read a second time.
        """
        limiter = self.limiter
        if limiter.per_address:
            refused = await limiter.ahit(address=address)
            if refused is not None:
                raise _too_many(refused, "rate limit exceeded")
        if not self.auth:
            return None
        token = _token(headers)
        if token is None:
            raise HTTPException(
                401,
                "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        blocked = None if failures_checked else await limiter.auth_blocked(address)
        if blocked is not None:
            raise _too_many(blocked, "too many failed authentications from this address")
        found = self.keys.check(token)
        try:
            key = await run_in_threadpool(self.keys.verify_legacy, found) if isinstance(found, LegacyKey) else found
        except LegacyCheckBusy as exc:
            raise HTTPException(429, str(exc), headers={"Retry-After": "1"}) from None
        if key is None:
            await limiter.auth_failed(address)
            raise HTTPException(401, "invalid or revoked API key", headers={"WWW-Authenticate": "Bearer"})
        if not key.allows(scope):
            raise HTTPException(403, f"API key {key.name!r} does not have the {scope!r} scope")
        if limiter.per_key:
            refused = await limiter.ahit(key_id=key.id)
            if refused is not None:
                raise _too_many(refused, "rate limit exceeded")
        return key

    def dependency(self, scope: Scope) -> Callable[[Request], Awaitable[ApiKey | None]]:
        """A FastAPI dependency admitting requests that need ``scope``."""

        async def check(
            request: Request,
            _bearer: HTTPAuthorizationCredentials | None = Security(BEARER),
            _header: str | None = Security(API_KEY_HEADER),
        ) -> ApiKey | None:
            return await self.admit(scope, request.headers, request.client.host if request.client else None)

        return check
