"""What a partition's pipeline has learnt, as one blob: detector state and stream state of the same moment.

The blob uses the stream-state format (:class:`~tunewatch.pipeline.stream_state.StreamStateCodec`: zstd,
BLAKE2b-checked, numbers and Arrow only — nothing is unpickled —, the processor's user-id hashes sealed with the
data keyring when ``TUNEWATCH_DATA_KEY`` is set). Its tree names the partition and the last acknowledged entry
id it was taken at, so a blob of another partition or another moment is refused even when its bytes are sound:

``{"component": "PartitionPipelineState", "version": 2, "partition": p, "last_id": id,
"detection": Pipeline.detection.state_dict(), "stream": Pipeline.stream_state_dict(),
"alerts": Pipeline.engine.state_dict()}``

The alert rules' state (pending and firing series, firing alerts with their ``startsAt``, look-back histories)
lets the worker taking over resolve the alerts the previous one had firing. Version 1 blobs (without it) are
still read: the alert engine then starts cold. Alert state of another rule set (the worker was started with
other rules) is skipped with one logged warning: detectors and stream state are restored, the engine starts cold.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from tunewatch.alert.engine import AlertEngine
from tunewatch.errors import TunewatchError
from tunewatch.pipeline.core import Pipeline
from tunewatch.pipeline.stream_state import StreamStateCodec, StreamStateError
from tunewatch.security.keyring import Keyring

log = logging.getLogger(__name__)

COMPONENT: Final = "PartitionPipelineState"
VERSION: Final = 2
#: versions :meth:`PipelineStateCodec.restore` reads (1: no alert state)
READABLE_VERSIONS: Final = (1, 2)


class PipelineStateError(TunewatchError):
    """A state blob cannot be restored: damaged, foreign, of another version, of another partition or moment,
    sealed with a key this worker does not have, or not fitting this pipeline's configuration."""


class PipelineStateCodec:
    """Encodes a partition pipeline's state to bytes and restores it; ``keyring`` seals the personal frames."""

    def __init__(self, keyring: Keyring | None = None) -> None:
        self.keyring = keyring

    def encode(self, pipeline: Pipeline, partition: int, last_id: str) -> bytes:
        """The state of ``pipeline`` now, taken after entry ``last_id`` was committed."""
        state = {
            "component": COMPONENT,
            "version": VERSION,
            "partition": partition,
            "last_id": last_id,
            "detection": pipeline.detection.state_dict(),
            "stream": pipeline.stream_state_dict(),
            "alerts": pipeline.engine.state_dict(),
        }
        return StreamStateCodec(f"partition {partition} state", keyring=self.keyring).encode(state)

    def restore(self, pipeline: Pipeline, blob: bytes, partition: int, last_id: str, where: str) -> None:
        """Load ``blob`` into ``pipeline`` (a fresh one: on error it may be half loaded and must be discarded).

        Raises :class:`PipelineStateError` naming ``where`` and the reason when the blob is unusable or was not
        taken for ``partition`` at ``last_id``.
        """
        try:
            state = StreamStateCodec(where, keyring=self.keyring).decode(blob)
        except StreamStateError as exc:
            raise PipelineStateError(str(exc)) from None
        found = state.get("component"), state.get("version")
        if found[0] != COMPONENT or found[1] not in READABLE_VERSIONS:
            raise PipelineStateError(f"{where}: component {found[0]!r} version {found[1]!r} is not supported "
                                     f"(this worker reads {COMPONENT} versions "
                                     f"{', '.join(map(str, READABLE_VERSIONS))})")  # fmt: skip
        moment = state.get("partition"), state.get("last_id")
        if moment != (partition, last_id):
            raise PipelineStateError(f"{where}: taken for partition {moment[0]!r} at entry {moment[1]!r}, not for "
                                     f"partition {partition} at entry {last_id!r}")  # fmt: skip
        try:
            pipeline.load_stream_state_dict(_mapping(state, "stream"))
            pipeline.detection.load_state_dict(_mapping(state, "detection"))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise PipelineStateError(f"{where}: does not fit this pipeline ({type(exc).__name__}: {exc})") from None
        if found[1] >= 2:
            _restore_alerts(pipeline, state, where)


def _restore_alerts(pipeline: Pipeline, state: dict[str, Any], where: str) -> None:
    """Load the alert engine's state; when it does not fit, warn once and leave the engine cold."""
    try:
        pipeline.engine.load_state_dict(_mapping(state, "alerts"))
    except (ValueError, TypeError) as exc:
        pipeline.engine = AlertEngine(pipeline.rules, detector_name=pipeline.engine.detector_name,
                                      on_transition=pipeline.engine.on_transition)  # fmt: skip
        log.warning("%s: alert state not restored, the alert rules start cold: %s", where, exc)


def _mapping(state: dict[str, Any], key: str) -> dict[str, Any]:
    value = state.get(key)
    if not isinstance(value, dict):
        raise TypeError(f"{key!r} is a {type(value).__name__}, not a mapping")
    return value
