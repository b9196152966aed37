"""Hostile NDJSON lines, each with the exact rejection reasons it must produce (empty: accepted, kept inert)."""

from __future__ import annotations

from typing import Any

import msgspec

NOW_MS = 1_767_571_200_000  # the validator's clock in these tests
TS = NOW_MS - 60_000


def event(**overrides: Any) -> dict[str, Any]:
    """A valid play event (JSON-ready); ``None`` removes a field."""
    base: dict[str, Any] = {
        "event_id": "h-1",
        "ts": TS,
        "event_type": "play",
        "user_id": "u1",
        "session_id": "s1",
        "track_id": "t1",
        "artist_id": "a1",
        "market": "BR",
        "platform": "android",
        "tier": "premium",
        "source": "playlist",
        "cdn": "edge-1",
        "ms_played": 60_000,
        "track_duration_ms": 200_000,
        "reason_end": "trackdone",
        "startup_ms": 300,
        "bitrate_kbps": 320,
        "offline": False,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def line(**overrides: Any) -> bytes:
    """A valid event line with ``overrides`` applied."""
    return msgspec.json.encode(event(**overrides))


def splice(field: str, raw_json: bytes) -> bytes:
    """A valid event line whose ``field`` holds ``raw_json`` verbatim (for values JSON encoders refuse to write)."""
    body = line(**{field: None})
    return body[:-1] + b',"' + field.encode() + b'":' + raw_json + b"}"


REQUIRED = ("event_id", "ts", "event_type", "user_id", "market", "platform", "tier")


def _deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


HOSTILE: dict[str, tuple[bytes, set[str]]] = {
    # --- invalid UTF-8
    "invalid_utf8_in_user_id": (splice("user_id", b'"u\xff\xfe"'), {"user_id: invalid_utf8"}),
    "overlong_utf8_slash_in_cdn": (splice("cdn", b'"\xc0\xaf"'), {"cdn: invalid_utf8"}),
    "truncated_utf8_in_track_id": (splice("track_id", b'"t\xe2\x82"'), {"track_id: invalid_utf8"}),
    "utf16_surrogate_bytes_in_artist_id": (splice("artist_id", b'"\xed\xa0\x80"'), {"artist_id: invalid_utf8"}),
    "invalid_utf8_in_unknown_field": (splice("comment", b'"\xff"'), {"line: invalid_utf8"}),
    # --- control, bidi and invisible characters
    "nul_escape_in_user_id": (line(user_id="u\x001"), {"user_id: control_chars"}),
    "newline_escape_in_session_id": (line(session_id="s\n1"), {"session_id: control_chars"}),
    "escape_sequence_in_cdn": (line(cdn="\x1b[31medge"), {"cdn: control_chars"}),
    "bidi_override_escape_in_track_id": (splice("track_id", b'"t\\u202e1"'), {"track_id: control_chars"}),
    "bidi_override_raw_in_artist_id": (line(artist_id="a\u202e1"), {"artist_id: control_chars"}),
    "bidi_isolate_in_cdn": (line(cdn="edge\u20661"), {"cdn: control_chars"}),
    "zero_width_space_in_user_id": (line(user_id="u\u200b1"), {"user_id: control_chars"}),
    "c1_next_line_in_user_agent": (line(user_agent="Mozilla\u0085"), {"user_agent: control_chars"}),
    "del_in_event_id": (line(event_id="h\x7f1"), {"event_id: control_chars"}),
    "bom_inside_user_id": (line(user_id="\ufeffu1"), {"user_id: control_chars"}),
    "line_separator_in_session_id": (line(session_id="s\u20281"), {"session_id: control_chars"}),
    "raw_control_byte_is_invalid_json": (line(user_id="u1").replace(b"u1", b"u\x011"), {"line: invalid_json"}),
    # --- whitespace
    "leading_space_in_user_id": (line(user_id=" u1"), {"user_id: whitespace"}),
    "whitespace_only_user_id": (line(user_id="   "), {"user_id: missing"}),
    "empty_event_id": (line(event_id=""), {"event_id: missing"}),
    # --- over-long values and lines
    "event_id_65_chars": (line(event_id="e" * 65), {"event_id: too_long"}),
    "user_agent_513_chars": (line(user_agent="a" * 513), {"user_agent: too_long"}),
    "user_agent_60_kib": (line(user_agent="<" * 60_000), {"user_agent: too_long"}),
    "multibyte_user_id_129_chars": (line(user_id="é" * 129), {"user_id: too_long"}),
    "line_over_64_kib": (line(comment="x" * 70_000), {"line: too_long"}),
    # --- deep nesting and wrong JSON types
    "deeply_nested_array_in_user_id": (splice("user_id", _deep(5000)), {"line: too_deep"}),
    "nested_object_in_user_id": (line(user_id={"a": {"b": [1]}}), {"user_id: bad_type"}),
    "array_in_market": (line(market=["BR"]), {"market: bad_type"}),
    "object_in_ms_played": (line(ms_played={"$gt": 0}), {"ms_played: bad_type"}),
    "bool_in_user_id": (line(user_id=True), {"user_id: bad_type"}),
    "bool_in_ms_played": (line(ms_played=True), {"ms_played: bad_type"}),
    "bool_in_platform": (line(platform=False), {"platform: bad_type"}),
    "string_in_offline": (line(offline="yes"), {"offline: not_boolean"}),
    "int_in_offline": (line(offline=1), {"offline: not_boolean"}),
    "fraction_in_ms_played": (line(ms_played=1.5), {"ms_played: not_integer"}),
    "text_in_startup_ms": (line(startup_ms="fast"), {"startup_ms: not_integer"}),
    # --- NaN, Infinity, out of range
    "nan_in_ms_played": (splice("ms_played", b"NaN"), {"ms_played: not_finite"}),
    "infinity_in_startup_ms": (splice("startup_ms", b"Infinity"), {"startup_ms: not_finite"}),
    "minus_infinity_in_bitrate": (splice("bitrate_kbps", b"-Infinity"), {"bitrate_kbps: not_finite"}),
    "int64_overflow_in_ms_played": (splice("ms_played", b"99999999999999999999"), {"ms_played: out_of_range"}),
    "int64_underflow_in_rebuffer_ms": (
        splice("rebuffer_ms", b"-9223372036854775809"),
        {"rebuffer_ms: out_of_range"},
    ),
    "exponent_overflow_in_ms_played": (splice("ms_played", b"1e400"), {"ms_played: out_of_range"}),
    "negative_ms_played": (line(ms_played=-1), {"ms_played: out_of_range"}),
    "bitrate_below_range": (line(bitrate_kbps=5), {"bitrate_kbps: out_of_range"}),
    "ts_not_a_time": (line(ts="yesterday"), {"ts: bad_timestamp"}),
    "ts_huge_number": (splice("ts", b"1000000000000000000000"), {"ts: bad_timestamp"}),
    "ts_far_future": (line(ts=NOW_MS + 3_600_000), {"ts: future"}),
    # --- script / SQL / HTML: inert data, rejected only where a rule says so
    "script_tag_in_user_agent_is_inert": (line(user_agent="<script>alert(1)</script>"), set()),
    "sql_injection_in_cdn_is_inert": (line(cdn="x'; DROP TABLE events;--"), set()),
    "html_in_user_id_is_inert": (line(user_id='<img src=x onerror="alert(1)">'), set()),
    "template_injection_in_session_id_is_inert": (line(session_id="{{7*7}}${jndi:ldap://x}"), set()),
    "script_in_market": (line(market="<b>"), {"market: unknown_country"}),
    "sql_in_platform": (line(platform="ios' OR '1'='1"), {"platform: not_in_enum"}),
    "nul_suffix_in_enum": (line(platform="ios\x00"), {"platform: not_in_enum"}),
    "homoglyph_market": (line(market="\u0405E"), {"market: unknown_country"}),
    "ip_addr_out_of_range": (line(ip_addr="999.1.1.1"), {"ip_addr: not_ip"}),
    "script_in_ip_addr": (line(ip_addr="<script>"), {"ip_addr: not_ip"}),
    "arabic_indic_digits_in_ip_addr": (line(ip_addr="1\u0662\u0663.0.0.1"), {"ip_addr: not_ip"}),
    "proto_pollution_unknown_field_ignored": (splice("__proto__", b'{"admin":true}'), set()),
    # --- structure
    "array_line": (b"[1,2,3]", {"line: not_object"}),
    "string_line": (b'"hello"', {"line: not_object"}),
    "truncated_json": (line()[:-1], {"line: invalid_json"}),
    "trailing_garbage": (line() + b" xyz", {"line: invalid_json"}),
    "bom_before_object": (b"\xef\xbb\xbf" + line(), {"line: invalid_json"}),
    "empty_object": (b"{}", {f"{name}: missing" for name in REQUIRED}),
    "several_failures_at_once": (
        line(user_id=None, market="br", ms_played=-5, cdn="e\u202e"),
        {"user_id: missing", "market: unknown_country", "ms_played: out_of_range", "cdn: control_chars"},
    ),
    "ad_in_premium_tier": (line(event_type="ad", ad_revenue_micros=10), {"tier: ad_not_free_tier"}),
    "play_without_track": (line(track_id=None), {"track_id: required_for_type"}),
    "played_beyond_duration": (line(ms_played=300_000), {"ms_played: exceeds_duration"}),
}
