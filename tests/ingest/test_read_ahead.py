"""Reading ahead keeps the reader's items, order and errors, and stops the reader when the consumer stops."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from tunewatch.ingest.read_ahead import read_ahead


def test_items_come_in_order_and_an_error_where_it_happened() -> None:
    def items() -> Iterator[int]:
        yield from range(3)
        raise ValueError("line 4: broken")

    got: list[int] = []
    with pytest.raises(ValueError, match="line 4"):
        for item in read_ahead(items(), depth=2):
            got.append(item)
    assert got == [0, 1, 2]


def test_a_consumer_that_stops_early_stops_and_closes_the_reader() -> None:
    made: list[int] = []
    closed = threading.Event()

    def items() -> Iterator[int]:
        try:
            for i in range(1_000):
                made.append(i)
                yield i
        finally:
            closed.set()

    reader = read_ahead(items())
    assert [next(reader), next(reader)] == [0, 1]
    reader.close()
    assert closed.is_set()
    assert len(made) <= 4  # the two consumed, one waiting in the queue, one being made
    assert not any(t.name == "tunewatch-read-ahead" and t.is_alive() for t in threading.enumerate())
