"""The lifecycle of a run: lock, begin, run the stages, finish (report, status), release.

Every writer takes the same sync lock, so one run at a time writes the store and a second is
refused with the id of the run that holds it (``LockBusy``). One ``locked_run`` serves the CLI
sync, remap and push: it takes the lock, registers the run, runs the body while a background
thread heartbeats the lock, then ``finish_run`` assembles the run report from the stage reports
and stores it with its status, whatever happened: ``failed`` with an error (a gate, a target's
reject ratio, a fatal stage), ``partial`` when some sources or targets failed and the rest went
through, else ``succeeded``; the lock is released last.
An Airflow DAG run spans many processes: its first task takes the lock for the run, every task
takes it again (the same run renews it) and heartbeats it while it works, and its final task
releases it, even when the run failed. A holder that died (a killed worker) stops
heartbeating, and its lock is broken once its heartbeat is older than ``LOCK_STALE_AFTER``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import select

from concord.errors import ConcordError, RunFailed, RunPartial
from concord.pipeline.context import RunContext
from concord.pipeline.reports import RunReport
from concord.redact import redact
from concord.store import tables as t

log = logging.getLogger("concord.pipeline")

LOCK_NAME = "sync"
LOCK_STALE_AFTER = timedelta(hours=1)
"""A lock whose heartbeat is older than this is taken to belong to a dead run on another host.

Holders heartbeat every ``HEARTBEAT_EVERY`` while they work; between an Airflow run's tasks (a
retry delay, a queue) nothing heartbeats, so Airflow's ``max_retry_delay`` stays below this."""
HEARTBEAT_EVERY = timedelta(seconds=30)


def take_lock(ctx: RunContext, owner: str | None = None) -> None:
    """Take (or, for the run holding it, renew) the sync lock; ``LockBusy`` if another has it."""
    ctx.store.acquire_lock(LOCK_NAME, ctx.run_id, stale_after=LOCK_STALE_AFTER, owner=owner)


def release_lock(ctx: RunContext) -> None:
    """Release the sync lock if this run holds it."""
    ctx.store.release_lock(LOCK_NAME, ctx.run_id)


@contextmanager
def heartbeating(ctx: RunContext, every: timedelta = HEARTBEAT_EVERY) -> Iterator[None]:
    """Heartbeat the run's lock from a background thread while the body runs."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every.total_seconds()):
            try:
                if not ctx.store.heartbeat_lock(LOCK_NAME, ctx.run_id):
                    log.warning("run %s no longer holds the sync lock", ctx.run_id)
            except Exception:  # the store may be down for a moment; the next beat tries again
                log.warning("could not heartbeat the sync lock of run %s", ctx.run_id)

    thread = threading.Thread(target=beat, name=f"lock-heartbeat:{ctx.run_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def begin_run(ctx: RunContext) -> None:
    """Register the run and its window in the store (a rerun of the same run reuses its row)."""
    ctx.store.start_run(
        ctx.run_id,
        trigger=ctx.options.trigger,
        window_start=ctx.options.window_start,
        window_end=ctx.options.window_end,
    )


def run_report(ctx: RunContext) -> RunReport:
    """The run's report assembled from its stage reports."""
    sr = t.stage_reports
    report: RunReport = {"run_id": ctx.run_id, "stages": {}}
    with ctx.store.engine.connect() as conn:
        for stage, scope, status, body in conn.execute(
            select(sr.c.stage, sr.c.scope, sr.c.status, sr.c.report)
            .where(sr.c.run_id == ctx.run_id)
            .order_by(sr.c.started_at)
        ):
            report["stages"].setdefault(stage, {})[scope] = {"status": status, **body}
    return report


def reject_ratio_error(ctx: RunContext, report: RunReport) -> str | None:
    """Why the run fails on push rejects (per target), or None.

    Source rejects are judged before the push by the gates (``concord.pipeline.gates``) over
    the whole entity; CRM refusals can only be counted once they were sent.
    """
    for tname, body in report["stages"].get("push", {}).items():
        if tname not in ctx.config.targets:
            continue
        limit = ctx.config.targets[tname].reject_ratio
        limit = ctx.config.reject_ratio if limit is None else limit
        sent = body.get("accepted", 0) + body.get("rejected", 0)
        if sent and body.get("rejected", 0) / sent > limit:
            return (
                f"target {tname}: {body['rejected']} of {sent} records rejected, "
                f"above reject_ratio {limit:.1%}"
            )
    return None


def stage_failures(report: RunReport) -> list[str]:
    """One line per stage scope that failed in the run (``extract sandbox_nav/orders: ...``)."""
    lines = []
    for stage, scopes in report["stages"].items():
        for scope, body in scopes.items():
            if body.get("status") == "failed":
                reason = (
                    body.get("error")
                    or body.get("held")
                    or "; ".join(body.get("failures") or [])
                    or "failed"
                )
                lines.append(f"{stage} {scope}: {reason}")
    return lines


def finish_run(
    ctx: RunContext, *, error: str | None = None, report: RunReport | None = None
) -> RunReport:
    """Store the run report with its status: failed (``error`` or a limit), partial, succeeded."""
    report = report if report is not None else run_report(ctx)
    error = error or reject_ratio_error(ctx, report)
    failures = stage_failures(report)
    if error:
        report["error"] = error
    if failures:
        report["failures"] = failures
    status = "failed" if error else "partial" if failures else "succeeded"
    ctx.store.save_run_report(ctx.run_id, dict(report), status=status)
    return report


def locked_run(ctx: RunContext, body: Callable[[], None]) -> RunReport:
    """Run ``body`` as one run under the sync lock; return the stored run report.

    An error of the body is recorded on the run and raised again (an unexpected one, a bug,
    too); past a target's reject ratio the run is stored as failed and ``RunFailed`` raised;
    when some sources or targets failed it is stored as partial and ``RunPartial`` raised.
    """
    take_lock(ctx)
    try:
        begin_run(ctx)
        try:
            with heartbeating(ctx):
                body()
        except ConcordError as exc:
            finish_run(ctx, error=exc.message)
            raise
        except Exception as exc:  # a bug, not bad input: still recorded on the run
            finish_run(ctx, error=redact(f"unexpected {type(exc).__name__}: {exc}"))
            raise
        report = finish_run(ctx)
        if "error" in report:
            raise RunFailed(report["error"])
        if "failures" in report:
            failures = report["failures"]
            more = f"; and {len(failures) - 3} more" if len(failures) > 3 else ""
            raise RunPartial(
                f"run partial, {len(failures)} failed: " + "; ".join(failures[:3]) + more
            )
        return report
    finally:
        release_lock(ctx)
