"""Request and response models of the HTTP API (they document the OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tunewatch.alert.model import format_time
from tunewatch.notify.silence import Silence


class IngestResponse(BaseModel):
    """Outcome of one ingest request: counts, and the rejected events with their reasons."""

    received: int
    accepted: int
    rejected: int
    duplicates: int
    errors: list[str] = Field(description="Human-readable messages for the first rejected events.")
    rejections: list[dict[str, Any]] = Field(
        description="Per rejected event (up to 1000): `line` (NDJSON, 1-based) or `index` (array, 0-based), "
        "`event_id` and `reasons` (`field: reason` codes)."
    )


class SilenceIn(BaseModel):
    """A new silence: matchers plus either ``duration`` or ``ends_at``."""

    model_config = ConfigDict(extra="forbid")
    matchers: list[str] = Field(min_length=1, max_length=20, examples=[["market=BR", 'alertname=~"Stream.*"']])
    comment: str = Field(min_length=1, max_length=1000)
    created_by: str = Field("api", min_length=1, max_length=200)
    duration: str | None = Field(None, max_length=32, description="e.g. 2h; default 1h when ends_at is absent.")
    starts_at: datetime | None = Field(None, description="RFC 3339; default now.")
    ends_at: datetime | None = Field(None, description="RFC 3339, instead of duration.")


class SilenceOut(BaseModel):
    """A silence and its state now."""

    id: str
    matchers: list[str]
    startsAt: str
    endsAt: str
    createdBy: str
    comment: str
    state: str

    @classmethod
    def of(cls, s: Silence, now_ms: int) -> SilenceOut:
        """Describe ``s`` at ``now_ms``."""
        return cls(
            id=s.id, matchers=[str(m) for m in s.matchers], startsAt=format_time(s.starts_at),
            endsAt=format_time(s.ends_at), createdBy=s.created_by, comment=s.comment, state=s.state(now_ms),
        )  # fmt: skip
