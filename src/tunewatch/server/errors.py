"""Validation errors answered as 422 with reasons, whatever the input held (never a 500 while reporting it).

FastAPI echoes the offending input in each error; an input of NaN or Infinity (which Python's JSON parser
accepts) or bytes that are not UTF-8 cannot be encoded as JSON, and the answer became a 500. Errors here keep
their location, message and type, and the input only when it is a short plain JSON value.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

_MAX_INPUT_CHARS = 200


def _plain(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        return len(value) <= _MAX_INPUT_CHARS
    return value is None or isinstance(value, bool | int)


def describe_errors(errors: Any) -> list[dict[str, Any]]:
    """Validation errors reduced to JSON-safe fields (``loc``, ``msg``, ``type``, a plain ``input``)."""
    out: list[dict[str, Any]] = []
    for err in errors:
        item: dict[str, Any] = {
            "loc": [p if isinstance(p, int | str) else str(p) for p in err.get("loc", ())],
            "msg": str(err.get("msg", "")),
            "type": str(err.get("type", "")),
        }
        value = err.get("input")
        if isinstance(value, float) and not math.isfinite(value):
            item["msg"] = "NaN and Infinity are not allowed: " + item["msg"]
        elif _plain(value):
            item["input"] = value
        out.append(item)
    return out


def install_error_handlers(app: FastAPI) -> None:
    """Answer request validation errors with :func:`describe_errors` (422)."""

    async def invalid(request: Request, exc: Exception) -> JSONResponse:
        errors = exc.errors() if isinstance(exc, RequestValidationError) else []
        return JSONResponse({"detail": describe_errors(errors)}, status_code=422)

    app.add_exception_handler(RequestValidationError, invalid)
