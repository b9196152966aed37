"""Rejection reasons: machine-readable ``field: reason`` codes and their human-readable messages."""

from __future__ import annotations

from typing import Final

REASON_MESSAGES: Final[dict[str, str]] = {
    "missing": "is required but missing",
    "required_for_type": "is required for this event_type but missing",
    "too_long": "is longer than allowed",
    "control_chars": "contains control, zero-width or bidirectional-override characters",
    "whitespace": "has leading or trailing whitespace",
    "not_in_enum": "is not one of the allowed values",
    "unknown_country": "is not an upper-case ISO 3166-1 alpha-2 country code (or ZZ, unknown)",
    "not_integer": "is not an integer",
    "not_boolean": "is not a boolean (true/false)",
    "out_of_range": "is out of the allowed range",
    "bad_timestamp": "is neither an RFC 3339 time with offset nor integer epoch milliseconds",
    "future": "is more than 5 minutes ahead of the wall clock",
    "too_old": "is older than the retention period",
    "late": "arrived after the allowed lateness behind the watermark",
    "exceeds_duration": "exceeds track_duration_ms + 5000",
    "exceeds_playtime": "exceeds ms_played + startup_ms",
    "ad_not_free_tier": "must be free for an ad event",
    "invalid_json": "is not valid JSON",
    "invalid_utf8": "is not valid UTF-8",
    "not_object": "is not a JSON object",
    "too_deep": "is nested too deeply",
    "number_out_of_range": "holds a number out of range",
    "invalid_csv": "is not a valid CSV row",
    "wrong_field_count": "has the wrong number of CSV fields",
    "bad_type": "has the wrong JSON type (an object, array or boolean where text or a number belongs)",
    "not_finite": "is NaN or infinity",
    "not_ip": "is not an IPv4 or IPv6 address",
}


def describe(reason: str) -> str:
    """Human-readable sentence for a ``field: reason`` code (unknown codes are returned as they are)."""
    field, _, code = reason.partition(": ")
    message = REASON_MESSAGES.get(code)
    return f"{field} {message}" if message else reason
