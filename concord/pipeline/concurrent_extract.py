"""Concurrent extract: a run's source entities pulled side by side, at most ``concurrency`` at once.

Each pulled (not ``derived_from``) entity's window is one task on a bounded thread pool. Every
source's first entity starts at once; its other entities join the queue when that source has
answered a first page (or its first pull ended), so a source that is down fails once and its
other entities are recorded "not pulled" instead of each waiting through the retries. Each task
stages page by page with its checkpoint (``pull_window``), so a crash loses nothing committed.
A source's follow-ups — its revisit sets, the parents its triggers re-read, due sweeps
(``finish_extract``) — run after every window pull of that source is done, one entity after the
other in config order: a payment re-reads its invoice only once the invoice's own window is
staged, so the two never race. A source's request budget is its connector's shared rate limiter
(``connectors.http.rate``), which every thread of that source draws from. SQLite takes one
writer: each page's transaction is short and waits for the write lock in SQLite's busy timeout
(measured a little faster than queueing every page transaction behind one lock in the process,
which also serialises the reads before the write); PostgreSQL writes concurrently. An entity
that fails is recorded as a failed stage and the others go on (the run ends ``partial``). A bug
(anything not a ``ConcordError``) stops the run: entities not started are dropped and the error
is raised once those running have finished.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from concord.errors import ConcordError, ConfigError, SourceError
from concord.pipeline.context import RunContext, record_failure
from concord.pipeline.extract import PulledWindow, finish_extract, pull_window
from concord.utc import utcnow

T = TypeVar("T")


def pull_order(ctx: RunContext, entities: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Each source's pulled entities in config order (``derived_from`` ones ride along)."""
    plan: dict[str, list[str]] = {}
    for sname, ename in entities:
        if ctx.config.sources[sname].entities[ename].derived_from is None:
            plan.setdefault(sname, []).append(ename)
    return plan


class _Run:
    """One concurrent extract: the pool, the sources down, what each source has pulled.

    Only the coordinating thread submits work and keeps the counts; tasks tell it what
    happened through ``events`` (a task done, a source that answered its first page).
    """

    def __init__(self, ctx: RunContext, plan: dict[str, list[str]], pool: ThreadPoolExecutor):
        self.ctx = ctx
        self.plan = plan
        self.pool = pool
        self.events: queue.Queue[tuple[str, Future[str] | None]] = queue.Queue()
        self.lock = threading.Lock()
        self.down: dict[str, str] = {}
        self.pulled: dict[str, list[PulledWindow]] = {s: [] for s in plan}
        self.held: dict[str, list[str]] = {s: es[1:] for s, es in plan.items()}
        self.left: dict[str, int] = {s: len(es) for s, es in plan.items()}
        self.tasks: dict[Future[str], str] = {}

    def submit(self, kind: str, fn: Callable[..., str], *args: str) -> None:
        """Start a task (``pull`` or ``finish``) on the pool; its end arrives in ``events``."""
        future = self.pool.submit(fn, *args)
        self.tasks[future] = kind
        future.add_done_callback(lambda f: self.events.put(("", f)))

    def scoped(self, sname: str, scope: str, body: Callable[[], T]) -> T | None:
        """Run one entity's part; a ``ConcordError`` is recorded (and may mark the source down)."""
        started = utcnow()
        try:
            return body()
        except ConcordError as exc:
            record_failure(self.ctx, "extract", scope, started, exc.message)
            self.ctx.emit("failed", stage="extract", scope=scope, error=exc.message)
            if isinstance(exc, ConfigError) or (isinstance(exc, SourceError) and exc.retriable):
                with self.lock:
                    self.down.setdefault(sname, f"source unreachable during the pull of {scope}")
            return None

    def pull(self, sname: str, ename: str) -> str:
        """One entity's window (a pool task); returns its source's name."""
        scope = f"{sname}/{ename}"
        with self.lock:
            down = self.down.get(sname)
        if down is not None:
            record_failure(self.ctx, "extract", scope, utcnow(), f"not pulled: {down}")
            return sname
        outer = self.ctx.on_event
        answered = False

        def on_event(name: str, data: dict[str, Any]) -> None:
            nonlocal answered
            if name == "page" and not answered:
                answered = True
                self.events.put((sname, None))
            if outer is not None:
                outer(name, data)

        ctx = dataclasses.replace(self.ctx, on_event=on_event)
        ctx.emit("stage", stage="extract", scope=scope)
        pulled = self.scoped(sname, scope, lambda: pull_window(ctx, sname, ename))
        if pulled is not None:
            with self.lock:
                self.pulled[sname].append(pulled)
        return sname

    def finish(self, sname: str) -> str:
        """The source's follow-ups, in config order, once all its windows are pulled."""
        order = {e: i for i, e in enumerate(self.plan[sname])}
        for pulled in sorted(self.pulled[sname], key=lambda p: order[p.entity]):
            scope = f"{sname}/{pulled.entity}"
            self.scoped(sname, scope, partial(finish_extract, self.ctx, pulled))
        return sname

    def release(self, sname: str) -> None:
        """The source answered (or its first pull ended): its other entities may start."""
        held, self.held[sname] = self.held[sname], []
        for ename in held:
            self.submit("pull", self.pull, sname, ename)

    def coordinate(self) -> None:
        """Start each source's first entity, then react to events until every task is done."""
        for sname, entities in self.plan.items():
            self.submit("pull", self.pull, sname, entities[0])
        while self.tasks:
            sname, future = self.events.get()
            if future is None:  # the source answered its first page
                self.release(sname)
                continue
            kind = self.tasks.pop(future)
            sname = future.result()  # a bug raises here and stops the run
            if kind == "finish":
                continue
            self.release(sname)  # a first pull that ended without a page: go on, or skip
            self.left[sname] -= 1
            if self.left[sname] == 0:
                self.submit("finish", self.finish, sname)


def extract_concurrently(
    ctx: RunContext, entities: list[tuple[str, str]], concurrency: int
) -> None:
    """Extract every entity with at most ``concurrency`` pulls at once (see the module)."""
    plan = pull_order(ctx, entities)
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="concord-extract") as pool:
        try:
            _Run(ctx, plan, pool).coordinate()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
