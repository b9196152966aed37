"""Reading ahead: the next batch of a file is read and decoded in a background thread while the pipeline works.

Decoding (Polars' NDJSON parser, the compiled byte screen) releases the GIL, so on a machine with a second core
reading overlaps the rest of the pipeline instead of adding to it. The batches and their order are those of the
reader: only when each is made changes.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from typing import Final, TypeVar

T = TypeVar("T")

_END: Final = object()
_POLL_S: Final = 0.1  # how often a blocked reader looks whether the consumer has gone


def read_ahead(items: Iterator[T], depth: int = 1) -> Generator[T, None, None]:
    """Yield ``items`` in order, with up to ``depth`` of them made ahead in a background thread.

    An exception of ``items`` is raised here, where its item would have been yielded. When the consumer stops
    early (closes this generator, or raises), the thread stops after the item it is making and ``items`` is
    closed.

    >>> list(read_ahead(iter(range(5))))
    [0, 1, 2, 3, 4]
    """
    ready: queue.Queue[tuple[object, BaseException | None]] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(item: object, error: BaseException | None = None) -> bool:
        while not stop.is_set():
            try:
                ready.put((item, error), timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            put(_END, exc)
            return
        put(_END)

    thread = threading.Thread(target=work, name="tunewatch-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item, error = ready.get()
            if item is _END:
                if error is not None:
                    raise error
                return
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()
        close = getattr(items, "close", None)
        if close is not None:
            close()
