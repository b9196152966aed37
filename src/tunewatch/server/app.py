"""The FastAPI application: routes only; the work is done by :class:`LiveService`.

Everything is under ``/api/v1``; ``/healthz`` and ``/readyz`` are open, ``/metrics`` needs the ``metrics`` scope
when auth is on (unless ``TUNEWATCH_METRICS_AUTH=0``: it carries per-market revenue), the
web console is served at ``/``. See :mod:`tunewatch.server.settings` for authentication and limits.
"""

from __future__ import annotations

import gc
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from tunewatch import __version__
from tunewatch.errors import ConfigError
from tunewatch.monitor.profiling import ProfilingUnavailable
from tunewatch.notify.config import parse_duration_ms
from tunewatch.notify.matchers import parse_matchers
from tunewatch.notify.silence import SilenceError
from tunewatch.schema import DIMENSION_FIELDS
from tunewatch.security.keys import ApiKey, ApiKeyError, Scope
from tunewatch.security.ratelimit import RateLimiter
from tunewatch.server.auth import AccessControl
from tunewatch.server.batcher import IngestBatcher
from tunewatch.server.errors import install_error_handlers
from tunewatch.server.guard import RequestGuard
from tunewatch.server.ingest_http import INGEST_PATH, IngestApp, IngestHandler
from tunewatch.server.models import IngestResponse, SilenceIn, SilenceOut
from tunewatch.server.service import LiveService
from tunewatch.server.settings import ServerSettings

STATIC = FilePath(__file__).with_name("static")
#: the latest time a query parameter may name: 9999-12-31T23:59:59.999Z
MAX_EPOCH_MS = 253_402_300_799_999
_INGEST_BODY = {
    "requestBody": {
        "required": True,
        "description": "Events: a JSON array (or one object), NDJSON, or msgpack; optionally gzip or zstd encoded.",
        "content": {
            "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
            "application/x-ndjson": {"schema": {"type": "string"}},
            "application/msgpack": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


_CONSOLE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def create_app(service: LiveService, settings: ServerSettings | None = None) -> IngestApp:
    """Build the app around a live service (settings default to the service's, i.e. ``TUNEWATCH_*``)."""
    cfg = settings or service.settings
    if cfg.auth and service.db_path == ":memory:":
        raise ConfigError(
            "TUNEWATCH_AUTH=1 needs a database with API keys: set TUNEWATCH_DB to the file used by `tunewatch keys`"
        )
    limiter = RateLimiter(
        per_key=cfg.rate_limit_per_key,
        per_address=cfg.rate_limit_per_address,
        auth_failures=cfg.auth_failures_per_address,
        storage_url=cfg.rate_limit_storage,
        timeout_s=cfg.rate_limit_timeout_s,
    )
    limiter.on_fallback = service.metrics_extra.rate_limit_fallback
    batcher = IngestBatcher(service, max_events=cfg.batch_max_events)
    access = AccessControl(auth=cfg.auth, keys=service.keys, limiter=limiter)
    handler = IngestHandler(cfg, access, batcher)
    max_silence_ms = _duration(cfg.max_silence)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if cfg.gc_freeze:
            gc.collect()
            gc.freeze()  # start-up objects (modules, functions) leave the collector's scans: shorter GC pauses
        yield
        await batcher.close()  # graceful shutdown: queued batches are run before the process ends
        # ... and a restart resumes exactly here (ids, windows). Called directly: no request is served any more,
        # and handing it to the thread pool during shutdown let a SIGINT tear the lifespan down half-way.
        service.checkpoint()

    app = IngestApp(
        title="tunewatch",
        version=__version__,
        description="Anomaly detection and alerting for music-streaming events.",
        lifespan=lifespan,
    )
    app.state.service = service
    app.ingest_handler = handler
    app.guard = RequestGuard(app.dispatch, cfg, bound_bodies_except={INGEST_PATH})
    app.state.limiter = limiter
    install_error_handlers(app)

    def scope(name: Scope) -> Any:
        return Depends(access.dependency(name))

    # ------------------------------------------------------------------------------------------ health

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, Any]:
        """Liveness: the process answers, with the pipeline counters."""
        return {"status": "ok", **service.status()}

    @app.get("/readyz", tags=["health"], responses={503: {"description": "a dependency is not ready"}})
    def readyz() -> JSONResponse:
        """Readiness: the databases answer. Shared rate-limit storage being down degrades (limits are kept in
        memory meanwhile) but does not make the service unready."""
        checks = service.ready()
        ok = all(checks.values())
        storage = "memory" if limiter.storage is limiter.memory else ("ok" if limiter.ready() else "fallback to memory")
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "checks": {**checks, "rate_limit_storage": storage}},
            status_code=200 if ok else 503,
        )

    metrics_guard = [scope("metrics")] if cfg.metrics_auth else []

    @app.get("/metrics", tags=["health"], response_class=Response, dependencies=metrics_guard)
    def metrics() -> Response:
        """Prometheus exposition of tunewatch's own metrics."""
        return Response(service.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    # ------------------------------------------------------------------------------------------ ingest

    @app.post(
        "/api/v1/events",
        tags=["ingest"],
        response_model=IngestResponse,
        openapi_extra=_INGEST_BODY,
        responses={
            400: {"description": "unusable body"},
            413: {"description": "body too large"},
            415: {"description": "unsupported content type or encoding"},
        },
    )
    async def ingest(request: Request) -> JSONResponse:
        """Ingest a batch of events; the answer counts accepted, rejected (with reasons) and duplicate events.

        (Served by :class:`IngestApp` before routing; this route documents it and serves mounted uses.)
        """
        report = await handler.handle(
            request.headers, request.stream(), request.client.host if request.client else None
        )
        return JSONResponse(report.to_dict())

    # ------------------------------------------------------------------------------------------ alerts

    @app.get("/api/v1/alerts", tags=["alerts"], dependencies=[scope("read")])
    def alerts(
        state: Literal["active", "history"] = "active",
        history: Annotated[bool, Query(description="Same as state=history (kept for older clients).")] = False,
    ) -> list[dict[str, Any]]:
        """Active alerts (with the silences that mute them), or recent state changes, newest last."""
        if history or state == "history":
            return [a.to_dict() for a in service.alert_history()]
        now = service.now_ms()
        return [{**a.to_dict(), "silencedBy": service.silenced_by(a, now)} for a in service.active_alerts()]

    # ------------------------------------------------------------------------------------------ silences

    @app.get("/api/v1/silences", tags=["silences"], dependencies=[scope("read")])
    def list_silences() -> list[SilenceOut]:
        """Every silence (pending, active, expired), newest first."""
        now = service.now_ms()
        return [SilenceOut.of(s, now) for s in service.list_silences()]

    @app.post(
        "/api/v1/silences",
        tags=["silences"],
        status_code=201,
        responses={400: {"description": "bad matchers or times"}},
    )
    def create_silence(body: SilenceIn, request: Request, key: ApiKey | None = scope("admin")) -> SilenceOut:
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
                ends = starts + _duration(body.duration or "1h")
            if starts > now + max_silence_ms:
                raise SilenceError(f"starts_at: more than {cfg.max_silence} ahead (max_silence)")
            if ends - starts > max_silence_ms:
                raise SilenceError(f"a silence lasts at most {cfg.max_silence} (max_silence)")
            silence = service.add_silence(
                matchers, starts_at=starts, ends_at=ends, created_by=body.created_by, comment=body.comment
            )
        except (ConfigError, SilenceError, ValueError, OverflowError, OSError) as exc:
            raise HTTPException(400, str(exc)) from exc
        service.audit(
            _actor(key, request), "silence.create", silence.id, matchers=[str(m) for m in silence.matchers],
            starts_at=silence.starts_at, ends_at=silence.ends_at, created_by=silence.created_by, via="http",
        )  # fmt: skip
        return SilenceOut.of(silence, service.now_ms())

    @app.delete(
        "/api/v1/silences/{silence_id}",
        tags=["silences"],
        responses={404: {"description": "no such silence"}, 409: {"description": "already expired"}},
    )
    def expire_silence(
        silence_id: Annotated[str, Path(max_length=64)],
        request: Request,
        key: ApiKey | None = scope("admin"),
    ) -> SilenceOut:
        """Expire a silence now (id or unique id prefix)."""
        try:
            silence = service.expire_silence(silence_id)
        except SilenceError as exc:
            raise HTTPException(409 if "already expired" in str(exc) else 404, str(exc)) from exc
        service.audit(_actor(key, request), "silence.expire", silence.id, via="http")
        return SilenceOut.of(silence, service.now_ms())

    # ------------------------------------------------------------------------------------------ rules

    @app.get("/api/v1/rules", tags=["rules"], dependencies=[scope("read")])
    def rules() -> list[dict[str, Any]]:
        """The rules in force, by group."""
        return [{"group": g.name, **r.model_dump(mode="json")} for g in service.pipeline.rules.groups for r in g.rules]

    @app.post(
        "/api/v1/rules/reload",
        tags=["rules"],
        responses={422: {"description": "the rule file is invalid; the old rules stay in force"}},
    )
    def reload_rules(request: Request, key: ApiKey | None = scope("admin")) -> dict[str, Any]:
        """Reload the rule file; detectors restart their warm-up."""
        actor = _actor(key, request)
        try:
            ruleset = service.reload_rules()
        except ConfigError as exc:
            service.audit(actor, "rules.reload", str(service.rules_path or "built-in"), outcome="refused", via="http")
            raise HTTPException(422, str(exc)) from exc
        service.audit(
            actor, "rules.reload", str(service.rules_path or "built-in"), rules=len(ruleset.rules), via="http"
        )
        return {"status": "reloaded", "rules": len(ruleset.rules)}

    # ------------------------------------------------------------------------------------------ API keys

    @app.get("/api/v1/keys", tags=["keys"], dependencies=[scope("admin")])
    def list_keys() -> list[dict[str, Any]]:
        """Every API key's public record (id, name, scopes, times; never a secret)."""
        return [
            {"id": k.id, "name": k.name, "scopes": sorted(k.scopes), "created_ms": k.created_ms,
             "revoked_ms": k.revoked_ms}
            for k in service.keys.list()
        ]  # fmt: skip

    @app.delete(
        "/api/v1/keys/{key_id}",
        tags=["keys"],
        responses={404: {"description": "no such key"}, 409: {"description": "already revoked"}},
    )
    def revoke_key(
        key_id: Annotated[str, Path(max_length=64)], request: Request, key: ApiKey | None = scope("admin")
    ) -> dict[str, Any]:
        """Revoke an API key: the next request with it is refused (401), in this process and every other."""
        try:
            revoked = service.keys.revoke(key_id, now_ms=int(time.time() * 1000))
        except ApiKeyError as exc:
            raise HTTPException(409 if "already revoked" in str(exc) else 404, str(exc)) from exc
        service.audit(_actor(key, request), "api_key.revoke", revoked.id, name=revoked.name, via="http")
        return {"id": revoked.id, "name": revoked.name, "revoked_ms": revoked.revoked_ms}

    # ------------------------------------------------------------------------------------------ series

    @app.get("/api/v1/series", tags=["series"], dependencies=[scope("read")])
    def series_catalog(limit: Annotated[int, Query(ge=1, le=5000)] = 500) -> list[dict[str, Any]]:
        """Series with detection results in the newest window: metric and dimension values."""
        return service.series.catalog(limit)

    @app.get("/api/v1/history/{metric}", tags=["series"], dependencies=[scope("read")])
    def history(
        metric: str,
        request: Request,
        dimset: Annotated[str, Query(max_length=64)] = "global",
        since: Annotated[int | None, Query(ge=0, le=MAX_EPOCH_MS, description="epoch ms")] = None,
        until: Annotated[int | None, Query(ge=0, le=MAX_EPOCH_MS, description="epoch ms")] = None,
    ) -> dict[str, Any]:
        """A metric's stored history (Parquet by day, 30 days by default); dimensions as query parameters."""
        if service.history is None:
            raise HTTPException(404, "no metric history: start the service with a database (--db / TUNEWATCH_DB)")
        dims = {k: v for k, v in request.query_params.items() if k in DIMENSION_FIELDS}
        try:
            frame = service.history.query(metric, dimset=dimset, dims=dims, since_ms=since, until_ms=until)
        except KeyError as exc:
            raise HTTPException(404, f"metric: {exc.args[0]}") from None
        return {"metric": metric, "dimset": dimset, "dims": dims, "points": frame.to_dicts()}

    @app.get("/api/v1/series/{metric}", tags=["series"], dependencies=[scope("read")])
    def series_points(metric: str, request: Request) -> dict[str, Any]:
        """Values of one series with the expected value and band per window, and its alert markers.

        Dimensions are query parameters (``?market=BR&cdn=edge-2``); absent ones select the aggregate.
        """
        dims = {k: v for k, v in request.query_params.items() if k in DIMENSION_FIELDS}
        points = service.series_points(metric, dims)
        markers = [
            {
                "status": a.status,
                "alertname": a.name,
                "at": a.starts_at if a.status == "firing" else a.ends_at,
                "summary": a.annotations.get("summary", ""),
            }
            for a in service.alert_history()
            if a.labels.get("metric") == metric and {k: v for k, v in a.labels.items() if k in DIMENSION_FIELDS} == dims
        ]
        return {"metric": metric, "dims": dims, "points": points, "alerts": markers}

    # ------------------------------------------------------------------------------------------ quarantine

    @app.get("/api/v1/quarantine", tags=["quarantine"], dependencies=[scope("read")])
    def quarantine(limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
        """Recent rejected events (newest first) with their reasons and raw bytes (truncated)."""
        return {"total": service.quarantine.total, "events": service.quarantine.recent(limit)}

    # ------------------------------------------------------------------------------------------ profiling

    @app.get(
        "/api/v1/admin/profile",
        tags=["admin"],
        dependencies=[scope("admin")],
        response_class=Response,
        responses={503: {"description": "pyinstrument is not installed"}},
    )
    async def profile(
        seconds: Annotated[float, Query(gt=0, le=60, description="How long to profile pipeline steps.")] = 5.0,
        format: Annotated[Literal["html", "text", "speedscope"], Query()] = "html",
    ) -> Response:
        """Profile the pipeline steps run in the next ``seconds`` (pyinstrument) and return the report."""
        try:
            report = await run_in_threadpool(service.profiler.capture, seconds, format)
        except ProfilingUnavailable as exc:
            raise HTTPException(503, str(exc)) from exc
        media = {"html": "text/html", "text": "text/plain", "speedscope": "application/json"}[format]
        return Response(report, media_type=media)

    # ------------------------------------------------------------------------------------------ console

    @app.get("/", include_in_schema=False)
    def console() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html", headers=_CONSOLE_HEADERS)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _actor(key: ApiKey | None, request: Request) -> str:
    """Who did an administrative action: the API key, else (auth off) the client address."""
    if key is not None:
        return f"api-key:{key.id}:{key.name}"
    return f"anonymous@{request.client.host if request.client else 'unknown'}"


def _duration(text: str) -> int:
    try:
        ms = parse_duration_ms(text)
    except ValueError as exc:
        raise SilenceError(f"duration: {exc}") from exc
    if ms <= 0:
        raise SilenceError("duration: must be positive")
    return ms
