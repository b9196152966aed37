"""The pipeline snapshot: the one format of what a pipeline has learnt, for serve mode and distributed mode alike.

A snapshot holds, taken at one moment, the detectors' state (:meth:`DetectionStage.state_dict`), the stream state
(:meth:`Pipeline.stream_state_dict`: remembered event ids, watermark, open windows, ingest-WAL position) and the
alert rules' state (:meth:`AlertEngine.state_dict`: pending and firing series, firing alerts with their
``startsAt``), with a *position* naming the moment (distributed mode: the partition and the last acknowledged
entry id; serve mode: the ingest-WAL sequence number). Its tree::

    {"component": "PipelineSnapshot", "version": 1, "position": {...},
     "detection": {...}, "stream": {...}, "alerts": {...}}

is stored in the state container of :mod:`tunewatch.pipeline.stream_state` (``TWSTREAM`` header, BLAKE2b
digest, zstd; numbers and Arrow only — nothing is unpickled —; the processor's user-id hashes sealed with the data
keyring when ``TUNEWATCH_DATA_KEY`` is set). Where it is kept:

* **serve** — :class:`SnapshotFile`, ``<db>.pipeline-state`` beside the database, written atomically (temporary
  file, fsync, rename, fsync of the folder) every few windows and at a clean shutdown; with an in-memory database
  and a Redis cache, :class:`CachedSnapshot` keeps the same bytes in the cache instead;
* **distributed** — the state blob beside each partition's checkpoint record in Redis
  (:mod:`tunewatch.distributed.checkpoint`), encoded with :class:`SnapshotCodec`.

Restoring (:func:`restore`) is all or nothing for the detectors and the stream state (they must be of the same
moment); alert state that does not fit (the rules changed) is skipped with one warning and the rules start cold.

**Older state is adopted once**, then written in this format at the next checkpoint:

* a distributed ``PartitionPipelineState`` blob, versions 1 (no alert state: the rules start cold) and 2;
* serve's former ``<db>.stream-state`` file (stream state only; the detectors were in the cache under
  ``checkpoint:detection``, adopted too when the cache still has them): read when no ``<db>.pipeline-state``
  exists yet, and deleted once the first snapshot is written.

>>> from tunewatch.pipeline.core import Pipeline
>>> codec = SnapshotCodec()
>>> snap = codec.decode(codec.encode(Pipeline(), {"wal_seq": 0}), "example")
>>> sorted(snap.stream), snap.position, snap.adopted
(['component', 'detection_next_window', 'processor', 'validator', 'version', 'wal_seq'], {'wal_seq': 0}, '')
>>> restore(Pipeline(), snap)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

import numpy as np

from tunewatch.alert.engine import AlertEngine
from tunewatch.errors import TunewatchError
from tunewatch.pipeline.core import Pipeline
from tunewatch.pipeline.stream_state import StreamStateCodec, StreamStateError, StreamStateFile
from tunewatch.security.keyring import Keyring

if TYPE_CHECKING:
    from tunewatch.cache import MusicStreamingCacheManager

log = logging.getLogger(__name__)

COMPONENT: Final = "PipelineSnapshot"
VERSION: Final = 1
#: suffix of serve mode's snapshot file beside the database
FILE_SUFFIX: Final = ".pipeline-state"
#: suffix of serve mode's former stream-state file (adopted once)
LEGACY_FILE_SUFFIX: Final = ".stream-state"
#: cache key of serve mode's former detector checkpoint (adopted with the former stream-state file)
LEGACY_DETECTION_KEY: Final = "checkpoint:detection"
#: cache key of the snapshot of a service without a database file (Redis cache)
CACHE_KEY: Final = "checkpoint:pipeline"
CACHE_TTL_S: Final = 7 * 24 * 3600
#: the distributed workers' former blob (versions 1 and 2), adopted
_LEGACY_PARTITION = "PartitionPipelineState"
_LEGACY_PARTITION_VERSIONS = (1, 2)
#: serve's former stream-state tree (``Pipeline.stream_state_dict`` alone), adopted
_LEGACY_STREAM = "Pipeline"


class SnapshotError(TunewatchError):
    """A snapshot cannot be restored: damaged, foreign, of another version, of another moment, sealed with a key
    this process does not have, or not fitting this pipeline's configuration."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One snapshot as read: ``where`` it came from, its ``position`` and the three parts (``detection`` None: an
    adopted stream-state file without detectors; ``alerts`` None: none saved). ``adopted`` names the older format
    it was read from ("" for this one)."""

    where: str
    position: dict[str, Any]
    stream: dict[str, Any]
    detection: dict[str, Any] | None
    alerts: dict[str, Any] | None
    adopted: str = ""


def snapshot_tree(pipeline: Pipeline, position: Mapping[str, Any]) -> dict[str, Any]:
    """The snapshot of ``pipeline`` now, as a tree for the state container. Its arrays are copies, so the tree
    may be written on another thread while the pipeline goes on."""
    return {
        "component": COMPONENT,
        "version": VERSION,
        "position": dict(position),
        "detection": _copied(pipeline.detection.state_dict()),
        "stream": pipeline.stream_state_dict(),
        "alerts": pipeline.engine.state_dict(),
    }


def parse(tree: Mapping[str, Any], where: str) -> Snapshot:
    """The snapshot in a decoded tree: this format, or an older one adopted; :class:`SnapshotError` otherwise."""
    component, version = tree.get("component"), tree.get("version")
    if component == COMPONENT and version == VERSION:
        return Snapshot(where, _mapping(tree, "position", where), _mapping(tree, "stream", where),
                        _mapping(tree, "detection", where), _mapping(tree, "alerts", where))  # fmt: skip
    if component == _LEGACY_PARTITION and version in _LEGACY_PARTITION_VERSIONS:
        position = {"partition": tree.get("partition"), "last_id": tree.get("last_id")}
        alerts = _mapping(tree, "alerts", where) if version == 2 else None
        return Snapshot(where, position, _mapping(tree, "stream", where), _mapping(tree, "detection", where),
                        alerts, adopted=f"{_LEGACY_PARTITION} version {version}")  # fmt: skip
    if component == _LEGACY_STREAM:
        position = {"wal_seq": tree.get("wal_seq", 0)}
        return Snapshot(where, position, dict(tree), None, None, adopted="stream-state file")
    raise SnapshotError(f"{where}: component {component!r} version {version!r} is not supported (this version of "
                        f"tunewatch reads {COMPONENT} version {VERSION}, and adopts {_LEGACY_PARTITION} versions 1-2 "
                        "and stream-state files)")  # fmt: skip


def restore(pipeline: Pipeline, snapshot: Snapshot, *, position: Mapping[str, Any] | None = None) -> None:
    """Load ``snapshot`` into ``pipeline`` (a fresh one: on error it may be half loaded and must be discarded).

    ``position``, when given, must match the snapshot's (e.g. the partition and entry id of the checkpoint record
    it was read with). Raises :class:`SnapshotError` naming where the snapshot came from and the reason. Alert
    state that does not fit this pipeline's rules is skipped with one warning (the rules start cold).
    """
    where = snapshot.where
    if position is not None and any(snapshot.position.get(k) != v for k, v in position.items()):
        if "partition" in position:
            raise SnapshotError(f"{where}: taken for partition {snapshot.position.get('partition')!r} at entry "
                                f"{snapshot.position.get('last_id')!r}, not for partition {position['partition']} at "
                                f"entry {position.get('last_id')!r}")  # fmt: skip
        raise SnapshotError(f"{where}: taken at {snapshot.position}, not at {dict(position)}")
    try:
        pipeline.load_stream_state_dict(snapshot.stream)
        if snapshot.detection is not None:
            pipeline.detection.load_state_dict(snapshot.detection)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SnapshotError(f"{where}: does not fit this pipeline ({type(exc).__name__}: {exc})") from None
    if snapshot.alerts is not None:
        try:
            pipeline.engine.load_state_dict(snapshot.alerts)
        except (ValueError, TypeError) as exc:
            pipeline.engine = AlertEngine(pipeline.rules, detector_name=pipeline.engine.detector_name,
                                          on_transition=pipeline.engine.on_transition)  # fmt: skip
            log.warning("%s: alert state not restored, the alert rules start cold: %s", where, exc)
    if snapshot.adopted:
        log.info("%s: pipeline state adopted from a %s; it is written as a %s version %d from the next checkpoint",
                 where, snapshot.adopted, COMPONENT, VERSION)  # fmt: skip


def resume(make: Callable[[], Pipeline], store: SnapshotStore | None) -> tuple[Pipeline, Snapshot | None]:
    """A pipeline from ``make`` resumed from the snapshot in ``store``, and that snapshot; with nothing saved, or
    (one warning logged) an unusable snapshot, a fresh pipeline and None."""
    pipeline = make()
    snap = store.load() if store is not None else None
    if snap is None:
        return pipeline, None
    try:
        restore(pipeline, snap)
    except SnapshotError as exc:
        log.warning("pipeline state ignored, starting afresh: %s", exc)
        return make(), None  # a failed restore may have loaded part of the state
    log.info(
        "pipeline state restored from %s: %d event ids remembered, %d events in open windows, watermark %s",
        snap.where, len(pipeline.validator.dedup), pipeline.processor.buffered_events,
        pipeline.validator.watermark.value,
    )  # fmt: skip
    return pipeline, snap


class SnapshotCodec:
    """Snapshots as bytes (the distributed workers' state blobs); ``keyring`` seals the personal frames.

    >>> SnapshotCodec().decode(b"junk", "blob")
    Traceback (most recent call last):
    ...
    tunewatch.pipeline.snapshot.SnapshotError: blob: not a tunewatch stream-state file (no TWSTREAM header)
    """

    def __init__(self, keyring: Keyring | None = None) -> None:
        self.keyring = keyring

    def encode(self, pipeline: Pipeline, position: Mapping[str, Any]) -> bytes:
        """The snapshot of ``pipeline`` now, at ``position``."""
        return StreamStateCodec("pipeline snapshot", keyring=self.keyring).encode(snapshot_tree(pipeline, position))

    def decode(self, data: bytes, where: str) -> Snapshot:
        """The snapshot in ``data``; :class:`SnapshotError` naming ``where`` when it is unusable."""
        try:
            tree = StreamStateCodec(where, keyring=self.keyring).decode(data)
        except StreamStateError as exc:
            raise SnapshotError(str(exc)) from None
        return parse(tree, where)


class SnapshotStore(Protocol):
    """Where a service keeps its pipeline's snapshot (:class:`SnapshotFile`, :class:`CachedSnapshot`)."""

    @property
    def where(self) -> str:
        """Named in messages."""
        ...

    def save(self, pipeline: Pipeline, position: Mapping[str, Any], *, background: bool = False,
             on_saved: Callable[[], None] | None = None) -> None:  # fmt: skip
        """Save the snapshot of ``pipeline`` now; ``on_saved`` once it is durable. Errors are logged."""
        ...

    def load(self) -> Snapshot | None:
        """The saved snapshot; None for a fresh start (nothing saved, or — with one warning — unusable)."""
        ...

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until no background write is pending; False on timeout."""
        ...


class SnapshotFile:
    """Serve mode's snapshot: one file (``<db>.pipeline-state``), written atomically, on a worker thread when
    asked (see :class:`~tunewatch.pipeline.stream_state.StreamStateFile`); the former ``<db>.stream-state`` file
    (``legacy``) is adopted when no snapshot exists yet, with the detectors ``legacy_detection`` gives, and
    deleted once a snapshot is written.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        keyring: Keyring | None = None,
        legacy: Path | None = None,
        legacy_detection: Callable[[], object] | None = None,
    ) -> None:
        self.file = StreamStateFile(path, keyring=keyring)
        self.legacy = legacy
        self._legacy_detection = legacy_detection

    def __repr__(self) -> str:
        return f"SnapshotFile({str(self.path)!r}, sealed={self.file.keyring is not None})"

    @classmethod
    def beside(
        cls, db: str | os.PathLike[str], *, keyring: Keyring | None = None,
        legacy_detection: Callable[[], object] | None = None,
    ) -> SnapshotFile:  # fmt: skip
        """The snapshot file of the database ``db`` (adopting the database's former stream-state file)."""
        base = Path(db)
        return cls(base.with_suffix(FILE_SUFFIX), keyring=keyring, legacy=base.with_suffix(LEGACY_FILE_SUFFIX),
                   legacy_detection=legacy_detection)  # fmt: skip

    @property
    def path(self) -> Path:
        """The snapshot file."""
        return self.file.path

    @property
    def where(self) -> str:
        """The file's path."""
        return str(self.file.path)

    @property
    def last_size(self) -> int:
        """Bytes of the last snapshot written (0: none yet)."""
        return self.file.last_size

    def save(self, pipeline: Pipeline, position: Mapping[str, Any], *, background: bool = False,
             on_saved: Callable[[], None] | None = None) -> None:  # fmt: skip
        """Write the snapshot of ``pipeline`` now (on the worker thread with ``background``); a file that cannot
        be written is logged as an error and left as it was. ``on_saved`` is called once it is durable."""
        done = self._after_save(on_saved)
        tree = snapshot_tree(pipeline, position)
        if background:
            self.file.save_in_background(tree, on_saved=done)
            return
        try:
            self.file.save(tree)
        except OSError as exc:
            log.error("pipeline snapshot not saved to %s: %s", self.path, exc.strerror or exc)
            return
        done()

    def _after_save(self, on_saved: Callable[[], None] | None) -> Callable[[], None]:
        def done() -> None:
            if self.legacy is not None:
                try:
                    self.legacy.unlink(missing_ok=True)
                except OSError as exc:
                    log.warning("cannot remove the adopted %s: %s", self.legacy, exc.strerror or exc)
            if on_saved is not None:
                on_saved()

        return done

    def load(self) -> Snapshot | None:
        """The saved snapshot, or the former stream-state file adopted; None for a fresh start (nothing saved, or
        — with one warning — an unusable file). Temporary files of an interrupted write are removed first."""
        source = self.file
        if not self.path.exists() and self.legacy is not None and self.legacy.exists():
            source = StreamStateFile(self.legacy, keyring=self.file.keyring)
        source.remove_stale_temporaries()
        try:
            tree = source.read()
            if tree is None:
                return None
            snap = parse(tree, source.where)
        except (StreamStateError, SnapshotError) as exc:
            log.warning("pipeline state ignored, starting afresh: %s", exc)
            return None
        if snap.detection is None and self._legacy_detection is not None:
            detection = self._legacy_detection()
            if isinstance(detection, dict):
                snap = Snapshot(snap.where, snap.position, snap.stream, detection, None, snap.adopted)
        return snap

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until no background write is pending or running; False on timeout."""
        return self.file.wait(timeout)


class CachedSnapshot:
    """The snapshot of a service without a database file, in its Redis cache (key :data:`CACHE_KEY`, kept a week):
    a service restarted on the same Redis resumes it. Written synchronously (the same bytes as a file's)."""

    def __init__(self, cache: MusicStreamingCacheManager, *, keyring: Keyring | None = None,
                 key: str = CACHE_KEY) -> None:  # fmt: skip
        self.cache = cache
        self.key = key
        self.codec = SnapshotCodec(keyring)

    @property
    def where(self) -> str:
        """The cache key."""
        return f"cache key {self.key}"

    def save(self, pipeline: Pipeline, position: Mapping[str, Any], *, background: bool = False,
             on_saved: Callable[[], None] | None = None) -> None:  # fmt: skip
        """Write the snapshot to the cache now (``background`` is ignored); errors are logged."""
        try:
            self.cache.set(self.key, self.codec.encode(pipeline, position), ttl=CACHE_TTL_S)
        except Exception as exc:  # the cache reports many kinds of failure; ingest goes on
            log.error("pipeline snapshot not saved to the %s: %s: %s", self.where, type(exc).__name__, exc)
            return
        if on_saved is not None:
            on_saved()

    def load(self) -> Snapshot | None:
        """The snapshot in the cache; None when there is none or (with one warning) it is unusable."""
        data = self.cache.get(self.key)
        if not isinstance(data, bytes):
            return None
        try:
            return self.codec.decode(data, self.where)
        except SnapshotError as exc:
            log.warning("pipeline state ignored, starting afresh: %s", exc)
            return None

    def wait(self, timeout: float | None = None) -> bool:
        """Writes are synchronous: nothing to wait for."""
        return True


def _copied(node: Any) -> Any:
    """``node`` with every NumPy array copied (components may keep updating the arrays they exported)."""
    if isinstance(node, np.ndarray):
        return node.copy()
    if isinstance(node, Mapping):
        return {k: _copied(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_copied(v) for v in node]
    return node


def _mapping(tree: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    value = tree.get(key)
    if not isinstance(value, dict):
        raise SnapshotError(f"{where}: its {key!r} part is a {type(value).__name__}, not a mapping")
    return value


__all__ = [
    "CACHE_KEY",
    "COMPONENT",
    "FILE_SUFFIX",
    "LEGACY_DETECTION_KEY",
    "LEGACY_FILE_SUFFIX",
    "VERSION",
    "CachedSnapshot",
    "Snapshot",
    "SnapshotCodec",
    "SnapshotError",
    "SnapshotFile",
    "SnapshotStore",
    "restore",
    "resume",
    "snapshot_tree",
]
