"""Pages read ahead: a source's next page is fetched while the current one is being staged.

Staging a page (hashing, the store's write and commit) and fetching the next (the server's work, the
wire, JSON parsing) are independent; one after the other, the server idles while concord writes and
concord idles while the server answers (issue 19: the extract ran at 0.15 of the bare wire loop).
``prefetched`` runs the source's page iterator in its own thread, at most ``depth`` pages ahead, and
yields the pages in order. Nothing about what is committed changes: the caller still stages the
pages in order, a batch of them committed with its last page's checkpoint; a page fetched ahead and
not staged when the run stops is fetched again by the rerun, as any page after the last checkpoint.
An error of the iterator is raised where its page would have been; a caller that stops early
(its own error) stops the reader, which closes the iterator in its own thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_POLL_S = 0.1  # how often a reader blocked on a full queue looks whether the caller stopped


class _End:
    """The reader's last item: the iterator ended, or raised ``error``."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


def prefetched(items: Iterable[T], depth: int = 2, *, name: str = "prefetch") -> Iterator[T]:
    """``items`` in order, read by a thread at most ``depth`` items ahead of the caller."""
    if depth < 1:
        yield from items
        return
    slots: queue.Queue[T | _End] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: T | _End) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        iterator = iter(items)
        try:
            for item in iterator:
                if not offer(item):
                    break
            else:
                offer(_End(None))
        except BaseException as exc:  # handed to the caller's thread, raised there
            offer(_End(exc))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    reader = threading.Thread(target=read, name=name, daemon=True)
    reader.start()
    try:
        while True:
            item = slots.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item
    finally:
        stop.set()
        reader.join()
