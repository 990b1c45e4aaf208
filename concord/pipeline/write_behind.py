"""Write behind: a stage's batch writes run on one background thread while it computes the next.

The map stage spends about half its time in the database (the driver's ``executemany`` or
``COPY``, marking raw records mapped, the commit), and the driver releases the GIL while the
database works; so batch N is written while batch N+1 is parsed, mapped and validated. At most
one write is in flight and writes run in submission order, each in its own transaction, so what
is committed is always a prefix of the batches. A write's result reaches ``on_done`` in the
caller's thread only after its commit (progress events and report counts follow what is
stored), and a failed write raises in the caller at the next ``submit`` or at ``close``. A store
whose connections are per thread (in-memory SQLite) writes in the caller's thread instead.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Generic, TypeVar

T = TypeVar("T")


class WriteBehind(Generic[T]):
    """Runs ``submit``-ted writes one at a time on a background thread (or inline)."""

    def __init__(self, on_done: Callable[[T], None], *, background: bool = True) -> None:
        self._on_done = on_done
        self._pool = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="concord-writer")
            if background
            else None
        )
        self._pending: Future[T] | None = None

    def submit(self, write: Callable[[], T]) -> None:
        """Wait for the previous write (its result to ``on_done``), then start this one."""
        self._collect()
        if self._pool is None:
            self._on_done(write())
            return
        self._pending = self._pool.submit(write)

    def close(self) -> None:
        """Wait for the last write; its result goes to ``on_done``, its error is raised."""
        try:
            self._collect()
        finally:
            self._shutdown()

    def _collect(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self._on_done(pending.result())

    def _shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def __enter__(self) -> WriteBehind[T]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
            return
        # The caller failed: let the write in flight finish (it is one whole transaction),
        # do not report it, and let the caller's error propagate.
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.exception()
        self._shutdown()
