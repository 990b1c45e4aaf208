"""WriteBehind: writes run one at a time, in order, and report only after they finished."""

from __future__ import annotations

import threading

import pytest

from concord.pipeline.write_behind import WriteBehind


def test_writes_run_in_order_on_one_thread_and_report_after_finishing() -> None:
    done: list[int] = []
    ran: list[tuple[int, str]] = []
    with WriteBehind(done.append) as writer:
        for n in range(5):

            def write(n: int = n) -> int:
                ran.append((n, threading.current_thread().name))
                return n

            writer.submit(write)
            assert done == list(range(n))  # the previous write is reported, this one not yet
    assert done == list(range(5)) and [n for n, _ in ran] == list(range(5))
    assert {name for _, name in ran} != {threading.current_thread().name}


def test_a_failed_write_raises_in_the_caller_at_the_next_submit() -> None:
    done: list[int] = []

    def fail() -> int:
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"), WriteBehind(done.append) as writer:
        writer.submit(fail)
        writer.submit(lambda: 2)
    assert done == []  # nothing after the failure was written


def test_when_the_caller_fails_the_write_in_flight_finishes_unreported() -> None:
    done: list[int] = []
    finished = threading.Event()

    def write() -> int:
        finished.set()
        return 1

    with pytest.raises(KeyError), WriteBehind(done.append) as writer:
        writer.submit(write)
        raise KeyError("mapping bug")
    assert finished.is_set() and done == []


def test_inline_writes_report_at_once() -> None:
    done: list[int] = []
    with WriteBehind(done.append, background=False) as writer:
        writer.submit(lambda: threading.get_ident())
        assert done == [threading.get_ident()]
