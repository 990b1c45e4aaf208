"""Memory a finished stage freed, handed back to the operating system before the next one.

A stage that held a whole base (resolve's records, build_360's order totals) frees it when it
ends, but glibc's allocator keeps most freed pages mapped for reuse: measured on a medium
store, a first night's normalised records freed left the process 140 MiB above what it then
held, which the next stage carried as its floor. ``release_memory`` collects garbage cycles
and asks glibc to return free pages (``malloc_trim``); elsewhere (macOS, musl) it only
collects. A sync in one process calls it between stages; Airflow runs each stage in its own.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """The C library's ``malloc_trim`` (glibc), or None where it has none (musl, macOS)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


def release_memory() -> None:
    """Collect garbage cycles and return the allocator's free pages to the system."""
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
