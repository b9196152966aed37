"""Alert model shared by the rule engine (``alert``) and the notification pipeline (``notify``).

Alerts follow Prometheus Alertmanager's model: a set of labels identifies an alert (its fingerprint is the
FNV-1a 64-bit hash of the sorted labels, as Alertmanager computes it), annotations explain it, and
``startsAt``/``endsAt`` bound it in event time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_SEP = 0xFF
#: Alertmanager's "zero time", used as endsAt of an alert that has not ended.
ZERO_TIME = "0001-01-01T00:00:00Z"

Status = Literal["firing", "resolved"]


def fingerprint(labels: dict[str, str]) -> str:
    """Return Alertmanager's fingerprint of a label set: FNV-1a 64 over sorted ``name 0xff value 0xff``."""
    h = _FNV_OFFSET
    for name in sorted(labels):
        for chunk in (name.encode(), labels[name].encode()):
            for byte in chunk:
                h = ((h ^ byte) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
            h = ((h ^ _SEP) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def format_time(ms: int | None) -> str:
    """RFC 3339 (UTC, ``Z``) for epoch milliseconds; Alertmanager's zero time for ``None``."""
    if ms is None:
        return ZERO_TIME
    # isoformat pads the year to 4 digits (strftime's %Y does not on Linux: year 706 would not parse back)
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> int | None:
    """Inverse of :func:`format_time`: epoch milliseconds, or ``None`` for the zero time."""
    if text.startswith("0001-01-01"):
        return None
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


@dataclass(slots=True)
class Alert:
    """One alert state change (firing or resolved), as written to ``--alerts-out`` and sent to receivers.

    >>> a = Alert({"alertname": "FailuresUp", "market": "BR"}, {"summary": "failures up"}, "firing", 1_767_571_200_000)
    >>> a.name, a.to_dict()["startsAt"], Alert.from_dict(a.to_dict()).fingerprint == a.fingerprint
    ('FailuresUp', '2026-01-05T00:00:00.000Z', True)
    """

    labels: dict[str, str]
    annotations: dict[str, str]
    status: Status
    starts_at: int  # epoch ms, event time
    ends_at: int | None = None  # epoch ms; None while firing
    generator_url: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # machine-readable explanation (expected, band, ...)

    @property
    def fingerprint(self) -> str:
        """Alertmanager fingerprint of the labels."""
        return fingerprint(self.labels)

    @property
    def name(self) -> str:
        """The ``alertname`` label."""
        return self.labels.get("alertname", "")

    def to_dict(self) -> dict[str, Any]:
        """Alertmanager-compatible JSON object (webhook v4 ``alerts[]`` entry plus ``explanation``)."""
        out: dict[str, Any] = {
            "status": self.status,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "startsAt": format_time(self.starts_at),
            "endsAt": format_time(self.ends_at),
            "generatorURL": self.generator_url,
            "fingerprint": self.fingerprint,
        }
        if self.extra:
            out["explanation"] = self.extra
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Alert:
        """Parse an object written by :meth:`to_dict` (or an Alertmanager v4 webhook alert)."""
        return cls(
            labels={str(k): str(v) for k, v in data.get("labels", {}).items()},
            annotations={str(k): str(v) for k, v in data.get("annotations", {}).items()},
            status="resolved" if data.get("status") == "resolved" else "firing",
            starts_at=parse_time(data["startsAt"]) or 0,
            ends_at=parse_time(data.get("endsAt", ZERO_TIME)),
            generator_url=str(data.get("generatorURL", "")),
            extra=dict(data.get("explanation", {})),
        )
