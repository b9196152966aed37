"""Run the notification pipeline in the background of a live service.

:class:`BackgroundNotifier` is the service's ``on_alert`` callback: it hands alert changes to a
:class:`~tunewatch.notify.dispatcher.NotificationPipeline` and a worker thread runs the group flushes and
delivery retries when they fall due (sleeping until the next due time, or until a new alert arrives), so
alert evaluation never waits for a slow receiver.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType

from tunewatch.alert.model import Alert
from tunewatch.notify.dispatcher import NotificationPipeline

log = logging.getLogger(__name__)


class BackgroundNotifier:
    """``on_alert`` callback plus a flush thread over one :class:`NotificationPipeline`."""

    def __init__(self, pipeline: NotificationPipeline, *, max_sleep_s: float = 5.0) -> None:
        self.pipeline = pipeline
        self.max_sleep_s = max_sleep_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tunewatch-notify", daemon=True)

    def start(self) -> BackgroundNotifier:
        """Start the flush thread."""
        self._thread.start()
        return self

    def __call__(self, alert: Alert) -> None:
        """Queue one alert change (called by the alert engine's thread)."""
        self.pipeline.process([alert])
        self._wake.set()

    def stop(self) -> None:
        """Run a last flush, stop the thread and close the pipeline (undelivered notifications stay queued)."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()
        try:  # alert changes handed over while the thread's last flush was delivering
            self.pipeline.flush()
        except Exception:
            log.exception("last notification flush failed")
        self.pipeline.close()

    def __enter__(self) -> BackgroundNotifier:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self.stop()

    def _run(self) -> None:
        while True:
            try:
                self.pipeline.flush()
            except Exception:  # a broken flush must not kill notifications for good; it is retried
                log.exception("notification flush failed")
            if self._stop.is_set():
                return
            due = self.pipeline.next_due_ms()
            now = self.pipeline.clock.now_ms()
            speed = float(getattr(self.pipeline.clock, "speed", 1.0))  # clock seconds per wall second
            wait = self.max_sleep_s if due is None else min(self.max_sleep_s, max(0.05, (due - now) / 1000 / speed))
            self._wake.wait(wait)
            self._wake.clear()
