"""Checks of event files before a replay starts: a file that holds no events fails at once, by name.

A dirty line never fails a file (it is counted and quarantined), but a file none of whose first lines is an event
object — a labels file, a pretty-printed JSON document, random text with an ``.ndjson`` name — is not an events
file, and replaying it would only report ``0 accepted`` after the fact.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tunewatch.cli.paths import input_path
from tunewatch.errors import InputError

#: Fields at least one of which every event of §2 has; a decoded line with none of them is not an event.
_EVENT_FIELDS = ("event_id", "ts", "event_type")


def check_event_files(paths: list[Path]) -> list[Path]:
    """The files to replay (``-`` spooled from standard input), each checked on its first chunk.

    Raises :class:`InputError` naming the file for a missing, empty, binary or unknown-format file, and for one
    whose first chunk holds no event object.
    """
    from tunewatch.ingest.readers import read_events

    checked = []
    for given in paths:
        path = input_path(given)
        first = next(iter(read_events(path)), None)
        if first is None:
            raise InputError(f"{path}: holds no events")
        frame = first.frame
        eventlike = frame.height > 0 and any(
            name in frame.columns and frame[name].null_count() < frame.height for name in _EVENT_FIELDS
        )
        if not eventlike:
            reasons = Counter(line.reason for line in first.undecodable)
            top = ", ".join(f"{reason} ×{n}" for reason, n in reasons.most_common(3))
            lines = first.received
            raise InputError(
                f"{path}: not an events file: none of its first {lines:,} lines is an event object"
                + (f" ({top})" if top else " (no event_id, ts or event_type)")
            )
        checked.append(path)
    return checked
