"""``/api/v1/series`` and ``/api/v1/history``: detection results and stored metric history per series."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request

from tunewatch.schema import DIMENSION_FIELDS
from tunewatch.server.routes.context import RouteContext

#: the latest time a query parameter may name: 9999-12-31T23:59:59.999Z
MAX_EPOCH_MS = 253_402_300_799_999


def router(ctx: RouteContext) -> APIRouter:
    """Series routes."""
    service = ctx.service
    api = APIRouter(tags=["series"])

    @api.get("/api/v1/series", dependencies=[ctx.scope("read")])
    def series_catalog(limit: Annotated[int, Query(ge=1, le=5000)] = 500) -> list[dict[str, Any]]:
        """Series with detection results in the newest window: metric and dimension values."""
        return service.series.catalog(limit)

    @api.get("/api/v1/history/{metric}", dependencies=[ctx.scope("read")])
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

    @api.get("/api/v1/series/{metric}", dependencies=[ctx.scope("read")])
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

    return api
