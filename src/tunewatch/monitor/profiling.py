"""Profiling the pipeline with pyinstrument (a statistical profiler: ~1 ms samples, low overhead).

Two entry points:

- :func:`profile_to` wraps a block (e.g. a whole replay: ``tunewatch replay --profile out.html``) and writes
  the profile as interactive HTML (``.html``), speedscope JSON (``.json``) or text (anything else);
- :class:`SectionProfiler` profiles a running service on demand: the service wraps each batch in
  :meth:`SectionProfiler.section` (free while disarmed), and an admin endpoint calls
  :meth:`SectionProfiler.capture` to get a profile of the batches processed in the next N seconds, whichever
  threads ran them.

pyinstrument is an optional dependency; a clear :class:`ProfilingUnavailable` is raised without it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from tunewatch.clock import Clock, as_clock
from tunewatch.errors import TunewatchError

if TYPE_CHECKING:
    from pyinstrument import Profiler
    from pyinstrument.session import Session

Format = Literal["html", "text", "speedscope"]
DEFAULT_INTERVAL = 0.001


class ProfilingUnavailable(TunewatchError):
    """pyinstrument is not installed.

    >>> issubclass(ProfilingUnavailable, TunewatchError)  # raised by captures when pyinstrument is missing
    True
    """


def _profiler(interval: float) -> Profiler:
    try:
        from pyinstrument import Profiler
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ProfilingUnavailable("profiling needs pyinstrument: pip install pyinstrument") from exc
    return Profiler(interval=interval, async_mode="disabled")


def format_for(path: Path | str) -> Format:
    """The output format implied by a file name: ``.html`` → html, ``.json`` → speedscope, else text."""
    suffix = Path(path).suffix.lower()
    if suffix in (".html", ".htm"):
        return "html"
    return "speedscope" if suffix == ".json" else "text"


def render(session: Session, fmt: Format = "html") -> str:
    """A profile session as HTML, speedscope JSON or plain text."""
    from pyinstrument import renderers

    if fmt == "html":
        return renderers.HTMLRenderer().render(session)
    if fmt == "speedscope":
        return renderers.SpeedscopeRenderer().render(session)
    return renderers.ConsoleRenderer(unicode=True, color=False, short_mode=False).render(session)


@contextmanager
def profile_to(path: Path | str, *, interval: float = DEFAULT_INTERVAL) -> Iterator[Profiler]:
    """Profile the body (in this thread) and write the report to ``path``, even if the body raises.

    >>> import tempfile, os
    >>> out = os.path.join(tempfile.mkdtemp(), "profile.txt")
    >>> with profile_to(out):
    ...     _ = sum(i * i for i in range(100_000))
    >>> os.path.getsize(out) > 0
    True
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    profiler = _profiler(interval)
    profiler.start()
    try:
        yield profiler
    finally:
        session = profiler.stop()
        target.write_text(render(session, format_for(target)), encoding="utf-8")


class SectionProfiler:
    """On-demand profiles of the code run inside :meth:`section` blocks, from any thread.

    While disarmed a section costs one clock read. While armed each section runs under its own
    pyinstrument profiler and the sessions are merged when the capture ends.

    >>> profiler = SectionProfiler()
    >>> with profiler.section():  # disarmed: costs one clock read
    ...     total = sum(range(1000))
    >>> profiler.armed, profiler.sections
    (False, 0)
    """

    def __init__(self, *, interval: float = DEFAULT_INTERVAL, clock: Clock | Callable[[], float] | None = None) -> None:
        self.interval = interval
        self.clock: Clock = as_clock(clock)  # its monotonic time bounds a capture
        self._lock = threading.Lock()
        self._until = float("-inf")
        self._session: Session | None = None
        self.sections = 0

    @property
    def armed(self) -> bool:
        """True while a capture is collecting sections."""
        return self.clock.monotonic() < self._until

    def arm(self, seconds: float) -> None:
        """Start collecting the sections that begin in the next ``seconds`` (drops an earlier capture)."""
        if seconds <= 0:
            raise ValueError(f"seconds: must be > 0, got {seconds}")
        _profiler(self.interval)  # fail now, not in a worker thread, when pyinstrument is missing
        with self._lock:
            self._session = None
            self.sections = 0
            self._until = self.clock.monotonic() + seconds

    @contextmanager
    def section(self) -> Iterator[None]:
        """Wrap one unit of pipeline work (a batch); profiled only while armed."""
        if not self.armed:
            yield
            return
        profiler = _profiler(self.interval)
        profiler.start()
        try:
            yield
        finally:
            session = profiler.stop()
            with self._lock:
                self._session = session if self._session is None else type(session).combine(self._session, session)
                self.sections += 1

    def collect(self, fmt: Format = "html") -> str:
        """Disarm and return the merged profile (a short text note when no section ran)."""
        with self._lock:
            self._until = float("-inf")
            session, self._session = self._session, None
            sections, self.sections = self.sections, 0
        if session is None:
            return "tunewatch profile: no pipeline work ran during the capture\n"
        text = render(session, fmt)
        if fmt == "text":
            text = f"tunewatch profile: {sections} sections\n{text}"
        return text

    def capture(self, seconds: float, fmt: Format = "html", *, wait: Callable[[float], object] | None = None) -> str:
        """Profile the next ``seconds`` of pipeline work and return the report (blocks the calling thread).

        ``wait`` sleeps for the given seconds (default: ``time.sleep``); an admin endpoint calls this from a
        worker thread, e.g. ``await anyio.to_thread.run_sync(profiler.capture, 10.0)``.
        """
        self.arm(seconds)
        (wait or time.sleep)(seconds)
        return self.collect(fmt)
