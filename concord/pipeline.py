"""The nightly sync as stage functions: extract, map, resolve, build 360, push, reconcile.

Each stage reads and writes the store, commits its own work and returns a report, so the CLI runs
them in sequence and Airflow runs each as its own task (passing only the run id). Every stage is
idempotent: rerunning it, or resuming after a crash, ends in the same store. Extract commits each
page with its checkpoint; the watermark advances only when the whole window was committed.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from concord.config import PipelineConfig
from concord.errors import ConcordError, RunFailed
from concord.extract import extract
from concord.push import plan_push, push
from concord.reconcile import reconcile
from concord.redact import redact
from concord.run import (
    EventHook,
    RunContext,
    RunOptions,
    load_mappings,
    new_run_id,
    open_context,
    record_stage,
)
from concord.store import Store
from concord.store import tables as t
from concord.store.store import utcnow
from concord.transform import map_entity

__all__ = [
    "RunContext",
    "RunOptions",
    "build_360",
    "extract",
    "load_mappings",
    "map_entity",
    "new_run_id",
    "open_context",
    "plan_push",
    "push",
    "reconcile",
    "resolve",
    "run_sync",
]
LOCK_NAME = "sync"
LOCK_STALE_AFTER = timedelta(hours=6)
"""A lock whose heartbeat is older than this is taken to belong to a dead run on another host."""


def resolve(ctx: RunContext) -> dict[str, Any]:
    from concord import identity

    started = utcnow()
    report = identity.resolve(
        ctx.store, ctx.config.identity, ctx.run_id, base_dir=ctx.config.path.parent
    ).as_dict()
    record_stage(ctx, "resolve", "all", started, report)
    return report


def build_360(ctx: RunContext) -> dict[str, Any]:
    from concord import customer360

    started = utcnow()
    report = customer360.build(ctx.store, ctx.config, ctx.as_of, ctx.run_id).as_dict()
    record_stage(ctx, "build_360", "all", started, report)
    return report


def begin_run(ctx: RunContext) -> None:
    ctx.store.start_run(
        ctx.run_id,
        trigger=ctx.options.trigger,
        window_start=ctx.options.window_start,
        window_end=ctx.options.window_end,
    )


def run_report(ctx: RunContext) -> dict[str, Any]:
    """The run's report assembled from its stage reports."""
    sr = t.stage_reports
    report: dict[str, Any] = {"run_id": ctx.run_id, "stages": {}}
    with ctx.store.engine.connect() as conn:
        for stage, scope, status, body in conn.execute(
            select(sr.c.stage, sr.c.scope, sr.c.status, sr.c.report)
            .where(sr.c.run_id == ctx.run_id)
            .order_by(sr.c.started_at)
        ):
            report["stages"].setdefault(stage, {})[scope] = {"status": status, **body}
    return report


def check_reject_ratio(ctx: RunContext, report: dict[str, Any]) -> None:
    """Fail the run when rejects pass the configured ratio (map stage, then each target)."""
    maps = report["stages"].get("map", {}).values()
    records = sum(m.get("records", 0) for m in maps)
    rejected = sum(m.get("rejected", 0) for m in maps)
    if records and rejected / records > ctx.config.reject_ratio:
        raise RunFailed(
            f"{rejected} of {records} records rejected in mapping "
            f"({rejected / records:.1%}), above reject_ratio "
            f"{ctx.config.reject_ratio:.1%}; see `concord rejects`"
        )
    for tname, body in report["stages"].get("push", {}).items():
        limit = ctx.config.targets[tname].reject_ratio
        limit = ctx.config.reject_ratio if limit is None else limit
        sent = body.get("accepted", 0) + body.get("rejected", 0)
        if sent and body.get("rejected", 0) / sent > limit:
            raise RunFailed(
                f"target {tname}: {body['rejected']} of {sent} records rejected, "
                f"above reject_ratio {limit:.1%}"
            )


def run_sync(
    config: PipelineConfig,
    options: RunOptions,
    *,
    on_event: EventHook | None = None,
    store: Store | None = None,
) -> dict[str, Any]:
    """Run every stage in order under the store's sync lock; return the run report."""
    ctx = open_context(config, options, on_event=on_event, store=store)
    ctx.store.acquire_lock(LOCK_NAME, ctx.run_id, stale_after=LOCK_STALE_AFTER)
    status = "failed"
    error: str | None = None
    try:
        begin_run(ctx)
        sources = [
            s
            for s in config.sources.values()
            if s.enabled and (options.sources is None or s.name in options.sources)
        ]
        for scfg in sources:
            for ename, ecfg in scfg.entities.items():
                if ecfg.enabled:
                    ctx.emit("stage", stage="extract", scope=f"{scfg.name}/{ename}")
                    extract(ctx, scfg.name, ename)
                    ctx.store.heartbeat_lock(LOCK_NAME, ctx.run_id)
        for scfg in sources:
            for ename, ecfg in scfg.entities.items():
                if ecfg.enabled:
                    ctx.emit("stage", stage="map", scope=f"{scfg.name}/{ename}")
                    map_entity(ctx, scfg.name, ename)
        ctx.emit("stage", stage="resolve", scope="all")
        resolve(ctx)
        ctx.emit("stage", stage="build_360", scope="all")
        build_360(ctx)
        for tcfg in config.targets.values():
            if tcfg.enabled and (options.targets is None or tcfg.name in options.targets):
                ctx.emit("stage", stage="push", scope=tcfg.name)
                push(ctx, tcfg.name)
                ctx.store.heartbeat_lock(LOCK_NAME, ctx.run_id)
        ctx.emit("stage", stage="reconcile", scope="all")
        reconcile(ctx)
        report = run_report(ctx)
        check_reject_ratio(ctx, report)
        status = "succeeded"
        return report
    except ConcordError as exc:
        error = exc.message
        raise
    except Exception as exc:  # a bug, not bad input: still recorded on the run
        error = redact(f"unexpected {type(exc).__name__}: {exc}")
        raise
    finally:
        final = run_report(ctx)
        if error:
            final["error"] = error
        ctx.store.save_run_report(ctx.run_id, final, status=status)
        ctx.store.release_lock(LOCK_NAME, ctx.run_id)
