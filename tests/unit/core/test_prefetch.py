"""Pages read ahead (``concord.pipeline.prefetch``): same pages, same order, same errors."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from concord.pipeline.prefetch import prefetched


def test_pages_come_in_order_and_all_of_them() -> None:
    assert list(prefetched(iter(range(50)), depth=3)) == list(range(50))


def test_the_reader_stays_at_most_depth_pages_ahead() -> None:
    produced: list[int] = []
    step = threading.Event()

    def pages() -> Iterator[int]:
        for n in range(10):
            produced.append(n)
            if n == 4:
                step.set()
            yield n

    reading = prefetched(pages(), depth=2)
    assert next(reading) == 0
    step.wait(timeout=2)
    threading.Event().wait(0.3)  # let the reader run as far as the queue lets it
    # page 0 taken, pages 1 and 2 queued, page 3 read and waiting for a free slot
    assert len(produced) <= 4
    reading.close()


def test_an_error_of_the_source_is_raised_where_its_page_would_be() -> None:
    def pages() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("page 3 is malformed")

    seen: list[int] = []
    with pytest.raises(ValueError, match="page 3 is malformed"):
        for page in prefetched(pages()):
            seen.append(page)
    assert seen == [1, 2]


def test_a_caller_that_stops_early_stops_the_reader_and_closes_the_source() -> None:
    closed = threading.Event()

    def pages() -> Iterator[int]:
        try:
            n = 0
            while True:
                yield n
                n += 1
        finally:
            closed.set()

    reading = prefetched(pages(), depth=1)
    assert next(reading) == 0
    reading.close()  # as when staging a page raised
    assert closed.is_set()
    assert not any(t.name == "prefetch" and t.is_alive() for t in threading.enumerate())


def test_depth_zero_reads_in_the_callers_thread() -> None:
    threads: set[str] = set()

    def pages() -> Iterator[int]:
        threads.add(threading.current_thread().name)
        yield 1

    assert list(prefetched(pages(), depth=0)) == [1]
    assert threads == {threading.current_thread().name}
