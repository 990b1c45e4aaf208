"""``release_memory``: what a sync calls between stages so the next does not inherit the peak."""

from __future__ import annotations

import gc
import platform
import weakref

import pytest

from concord.pipeline import memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_glibc_malloc_trim_is_found() -> None:
    assert memory._malloc_trim() is not None


def test_release_memory_collects_garbage_cycles() -> None:
    class Node:
        other: Node | None = None

    a, b = Node(), Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    was = gc.isenabled()
    gc.disable()  # only release_memory may collect the cycle
    try:
        del a, b
        assert gone() is not None
        memory.release_memory()
        assert gone() is None
    finally:
        if was:
            gc.enable()
