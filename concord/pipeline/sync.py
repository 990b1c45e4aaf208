"""The nightly sync in one process: every stage in order, as one locked run.

Extract and map each enabled source entity, resolve identities, build the 360, push to each
enabled target, reconcile. ``RunOptions.sources``/``targets`` narrow the run; the lock is
heartbeated in the background while the stages run (``locked_run``).
"""

from __future__ import annotations

from concord.config import PipelineConfig
from concord.pipeline.build_360 import build_360
from concord.pipeline.context import EventHook, RunContext, RunOptions, open_context
from concord.pipeline.extract import extract
from concord.pipeline.lifecycle import locked_run
from concord.pipeline.map import map_entity
from concord.pipeline.push import push
from concord.pipeline.reconcile import reconcile
from concord.pipeline.reports import RunReport
from concord.pipeline.resolve import resolve
from concord.store import Store


def run_stages(ctx: RunContext) -> None:
    """Every stage of the run in order (the body of ``run_sync``'s locked run)."""
    config, options = ctx.config, ctx.options
    sources = [
        s
        for s in config.sources.values()
        if s.enabled and (options.sources is None or s.name in options.sources)
    ]
    entities = [(s.name, e) for s in sources for e, ecfg in s.entities.items() if ecfg.enabled]
    for sname, ename in entities:
        ctx.emit("stage", stage="extract", scope=f"{sname}/{ename}")
        extract(ctx, sname, ename)
    for sname, ename in entities:
        ctx.emit("stage", stage="map", scope=f"{sname}/{ename}")
        map_entity(ctx, sname, ename)
    ctx.emit("stage", stage="resolve", scope="all")
    resolve(ctx)
    ctx.emit("stage", stage="build_360", scope="all")
    build_360(ctx)
    for tcfg in config.targets.values():
        if tcfg.enabled and (options.targets is None or tcfg.name in options.targets):
            ctx.emit("stage", stage="push", scope=tcfg.name)
            push(ctx, tcfg.name)
    ctx.emit("stage", stage="reconcile", scope="all")
    reconcile(ctx)


def run_sync(
    config: PipelineConfig,
    options: RunOptions,
    *,
    on_event: EventHook | None = None,
    store: Store | None = None,
) -> RunReport:
    """Run every stage in order under the store's sync lock; return the run report."""
    ctx = open_context(config, options, on_event=on_event, store=store)
    return locked_run(ctx, lambda: run_stages(ctx))
