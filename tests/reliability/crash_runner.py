"""Test-only entry point for the crash tests: `python -m tests.reliability.crash_runner <stage> <n>
[--after-commit] -- <concord cli args>` runs the real `concord` CLI (`python -m concord.cli ...`)
with one change: the n-th store transaction opened during `<stage>` (extract, map, resolve,
build_360, push) does its work, then prints "PAUSED <stage>" and sleeps before committing (or,
with --after-commit, just after committing, holding no database lock) — so the test can kill -9
the process at a known point without a hook in the pipeline."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection

from concord.cli import sync as sync_command
from concord.cli.app import app
from concord.store.store import Store

_state: dict[str, Any] = {"stage": None, "count": 0}


def _pause(stage: str) -> None:
    print(f"PAUSED {stage}", flush=True)
    time.sleep(3600)


def main() -> None:
    stage, nth = sys.argv[1], int(sys.argv[2])
    after_commit = "--after-commit" in sys.argv[: sys.argv.index("--")]
    args = sys.argv[sys.argv.index("--") + 1 :]
    real_begin = Store.begin.__wrapped__  # type: ignore[attr-defined]
    real_progress = sync_command.progress_events

    @contextmanager
    def begin(self: Store) -> Iterator[Connection]:
        gen = real_begin(self)
        conn = next(gen)
        pause = False
        if _state["stage"] == stage:
            _state["count"] += 1
            pause = _state["count"] == nth
        try:
            yield conn
        except BaseException as exc:
            try:
                gen.throw(exc)
            except StopIteration:
                pass
            raise
        if pause and not after_commit:
            _pause(stage)
        try:
            next(gen)
        except StopIteration:
            pass
        if pause and after_commit:
            _pause(stage)

    @contextmanager
    def progress_events() -> Iterator[Any]:
        with real_progress() as inner:

            def on_event(name: str, data: dict[str, Any]) -> None:
                if name == "stage":
                    _state["stage"] = data["stage"]
                inner(name, data)

            yield on_event

    Store.begin = begin  # type: ignore[method-assign]
    sync_command.progress_events = progress_events  # the name `concord sync` calls
    sys.argv = ["concord", *args]
    app()


if __name__ == "__main__":
    main()
