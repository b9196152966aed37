"""Alertmanager's time intervals: named sets of times (``time_intervals``) that routes mute or are active in.

A route's ``mute_time_intervals`` stop its notifications while any of them contains the current time; its
``active_time_intervals`` send them only while one of them does (as in Alertmanager, neither is inherited
by child routes). A muted flush sends nothing and is not logged, so the next flush after the interval sends
what is still firing.

>>> ti = TimeInterval.model_validate({"weekdays": ["monday:friday"], "times": [{"start_time": "09:00",
...     "end_time": "17:00"}], "location": "Europe/Berlin"})
>>> ti.contains(1_767_600_000_000)  # Monday 2026-01-05 08:00 UTC = 09:00 in Berlin
True
>>> ti.contains(1_767_452_400_000)  # Saturday
False
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_WEEKDAYS = {name.lower(): i for i, name in enumerate(calendar.day_name)}  # monday = 0
_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
_TIME = re.compile(r"^(\d{2}):(\d{2})$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _ranges(items: list[str], what: str, parse: dict[str, int] | None, lo: int, hi: int,
            negative: bool = False) -> list[tuple[int, int]]:  # fmt: skip
    out = []
    for item in items:
        start_s, _, end_s = str(item).partition(":")
        bounds = []
        for part in (start_s, end_s or start_s):
            text = part.strip().lower()
            if parse is not None and text in parse:
                bounds.append(parse[text])
                continue
            try:
                value = int(text)
            except ValueError:
                raise ValueError(f"{what}: bad value {item!r}") from None
            if not (lo <= value <= hi or (negative and -hi <= value <= -1)):
                raise ValueError(f"{what}: {value} is out of range in {item!r}")
            bounds.append(value)
        if bounds[0] > bounds[1] and (bounds[0] > 0) == (bounds[1] > 0):
            raise ValueError(f"{what}: start after end in {item!r}")
        out.append((bounds[0], bounds[1]))
    return out


class TimeRange(_Model):
    """``times`` entry: ``start_time`` inclusive, ``end_time`` exclusive, ``HH:MM`` (``24:00`` allowed as end)."""

    start_time: str
    end_time: str

    @field_validator("start_time", "end_time")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        m = _TIME.match(v)
        if not m or int(m.group(2)) > 59 or int(m.group(1)) * 60 + int(m.group(2)) > 1440:
            raise ValueError(f"bad time {v!r}: use HH:MM from 00:00 to 24:00")
        return v

    def minutes(self) -> tuple[int, int]:
        """(start, end) in minutes of the day."""
        s, e = (int(t[:2]) * 60 + int(t[3:]) for t in (self.start_time, self.end_time))
        if s >= e:
            raise ValueError(f"times: start_time {self.start_time} is not before end_time {self.end_time}")
        return s, e


class TimeInterval(_Model):
    """One time interval: every given field must match (a missing field matches everything)."""

    times: list[TimeRange] = Field(default_factory=list)
    weekdays: list[str] = Field(default_factory=list)
    days_of_month: list[str] = Field(default_factory=list)
    months: list[str] = Field(default_factory=list)
    years: list[str] = Field(default_factory=list)
    location: str = "UTC"

    @field_validator("location")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo("UTC" if v == "Local" else v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown location {v!r} (an IANA time zone such as Europe/Berlin)") from None
        return v

    @model_validator(mode="after")
    def _check_ranges(self) -> TimeInterval:
        for t in self.times:
            t.minutes()
        _ranges([str(x) for x in self.weekdays], "weekdays", _WEEKDAYS, 0, 6)
        _ranges([str(x) for x in self.days_of_month], "days_of_month", None, 1, 31, negative=True)
        _ranges([str(x) for x in self.months], "months", _MONTHS, 1, 12)
        _ranges([str(x) for x in self.years], "years", None, 1, 9999)
        return self

    def contains(self, ts_ms: int) -> bool:
        """Whether the instant ``ts_ms`` (epoch ms) lies in this interval."""
        t = dt.datetime.fromtimestamp(ts_ms / 1000, dt.UTC)
        t = t.astimezone() if self.location == "Local" else t.astimezone(ZoneInfo(self.location))  # Local: the host's
        if self.times:
            minute = t.hour * 60 + t.minute
            if not any(s <= minute < e for s, e in (r.minutes() for r in self.times)):
                return False
        weekdays = _ranges([str(x) for x in self.weekdays], "weekdays", _WEEKDAYS, 0, 6)
        if weekdays and not _in(t.weekday(), weekdays):
            return False
        if self.days_of_month:
            days_in_month = calendar.monthrange(t.year, t.month)[1]
            ok = False
            for s, e in _ranges([str(x) for x in self.days_of_month], "days_of_month", None, 1, 31, negative=True):
                s2 = s if s > 0 else days_in_month + s + 1
                e2 = e if e > 0 else days_in_month + e + 1
                ok = ok or s2 <= t.day <= e2
            if not ok:
                return False
        if self.months and not _in(t.month, _ranges([str(x) for x in self.months], "months", _MONTHS, 1, 12)):
            return False
        return not (self.years and not _in(t.year, _ranges([str(x) for x in self.years], "years", None, 1, 9999)))


def _in(value: int, ranges: list[tuple[int, int]]) -> bool:
    return any(s <= value <= e for s, e in ranges)


class NamedTimeInterval(_Model):
    """A ``time_intervals`` entry: a name and intervals (the time is in it when any interval contains it)."""

    name: str = Field(min_length=1)
    time_intervals: list[TimeInterval] = Field(default_factory=list)

    def contains(self, ts_ms: int) -> bool:
        """Whether any of the intervals contains ``ts_ms``."""
        return any(ti.contains(ts_ms) for ti in self.time_intervals)
