"""The nightly sync in one process: every stage in order, as one locked run.

Extract and map each enabled source entity, check the gates, resolve identities, build the 360,
push to each enabled target, reconcile. A source entity whose pull fails, or a target whose push
fails, is recorded as a failed stage and the run goes on with the others; it then ends
``partial`` (``concord.pipeline.lifecycle``). The gates failing stops the run before resolve,
so nothing is computed from a broken source and nothing reaches a CRM. ``RunOptions.sources``/
``targets`` narrow the run; the lock is heartbeated in the background while the stages run
(``locked_run``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from concord.config import PipelineConfig
from concord.errors import ConcordError, ConfigError, PushHeld, SourceError
from concord.pipeline.build_360 import build_360
from concord.pipeline.concurrent_extract import extract_concurrently
from concord.pipeline.context import (
    EventHook,
    RunContext,
    RunOptions,
    open_context,
    record_failure,
)
from concord.pipeline.extract import extract
from concord.pipeline.gates import gate_entities, require_gates
from concord.pipeline.lifecycle import locked_run
from concord.pipeline.map import map_entity
from concord.pipeline.map_batches import MapPool
from concord.pipeline.memory import release_memory
from concord.pipeline.push import push
from concord.pipeline.reconcile import reconcile
from concord.pipeline.reports import RunReport, StageReport
from concord.pipeline.resolve import resolve
from concord.store import Store
from concord.utc import utcnow


def run_scoped(
    ctx: RunContext, stage: str, scope: str, body: Callable[[], StageReport]
) -> ConcordError | None:
    """Run one source entity's or target's stage; a failure is recorded and returned, not raised.

    Only what concord raises on purpose (``ConcordError``: a source down, a CRM refusing the
    call) is contained; a bug still stops the run, and so does the receivable gate holding the
    push (``PushHeld``: it holds every target alike, the run fails).
    """
    started = utcnow()
    ctx.emit("stage", stage=stage, scope=scope)
    try:
        body()
    except PushHeld:
        raise
    except ConcordError as exc:
        record_failure(ctx, stage, scope, started, exc.message)
        ctx.emit("failed", stage=stage, scope=scope, error=exc.message)
        return exc
    return None


def extract_all(ctx: RunContext, entities: list[tuple[str, str]]) -> None:
    """Extract every entity; after a source gave up retrying, its other entities are skipped.

    A source that stays unreachable through its retries is down, not missing one path: asking
    it for each further entity would only repeat the wait (timeouts times attempts each). A
    source whose settings cannot be used (a secret not set) fails the same way for every entity.
    With ``extract_concurrency`` above 1 the entities are pulled side by side
    (``concord.pipeline.concurrent_extract``, same rules); 1 pulls them one after the other.
    """
    if ctx.config.extract_concurrency > 1:
        extract_concurrently(ctx, entities, ctx.config.extract_concurrency)
        return
    down: dict[str, str] = {}
    for sname, ename in entities:
        if ctx.config.sources[sname].entities[ename].derived_from is not None:
            continue  # staged by the pull of the entity it derives from
        scope = f"{sname}/{ename}"
        if sname in down:
            record_failure(ctx, "extract", scope, utcnow(), f"not pulled: {down[sname]}")
            continue
        error = run_scoped(ctx, "extract", scope, partial(extract, ctx, sname, ename))
        if isinstance(error, ConfigError) or (isinstance(error, SourceError) and error.retriable):
            down[sname] = f"source unreachable during the pull of {scope}"


def run_stages(ctx: RunContext) -> None:
    """Every stage of the run in order (the body of ``run_sync``'s locked run)."""
    config, options = ctx.config, ctx.options
    entities = gate_entities(ctx)
    extract_all(ctx, entities)
    ctx.store.release_idle()  # the extract's threads each left a connection with its cache
    release_memory()
    with MapPool(config.map_workers) as pool:
        for sname, ename in entities:
            body = partial(map_entity, ctx, sname, ename, pool=pool)
            run_scoped(ctx, "map", f"{sname}/{ename}", body)
    ctx.store.release_idle()
    release_memory()
    ctx.emit("stage", stage="gate", scope="all")
    try:
        require_gates(ctx)
    except ConcordError:
        reconcile(ctx)
        raise
    ctx.emit("stage", stage="resolve", scope="all")
    resolve(ctx)
    release_memory()
    ctx.emit("stage", stage="build_360", scope="all")
    build_360(ctx)
    release_memory()
    for tcfg in config.targets.values():
        if tcfg.enabled and (options.targets is None or tcfg.name in options.targets):
            run_scoped(ctx, "push", tcfg.name, partial(push, ctx, tcfg.name, gates=False))
    release_memory()
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


def remap_stages(ctx: RunContext, entities: list[tuple[str, str]]) -> None:
    """Map the entities' staged records again, then resolve, build the 360 and reconcile."""
    with MapPool(ctx.config.map_workers) as pool:
        for sname, ename in entities:
            ctx.emit("stage", stage="map", scope=f"{sname}/{ename}")
            map_entity(ctx, sname, ename, replay="all", pool=pool)
    release_memory()
    ctx.emit("stage", stage="resolve", scope="all")
    resolve(ctx)
    release_memory()
    ctx.emit("stage", stage="build_360", scope="all")
    build_360(ctx)
    release_memory()
    ctx.emit("stage", stage="reconcile", scope="all")
    reconcile(ctx)


def run_remap(
    config: PipelineConfig,
    options: RunOptions,
    entities: list[tuple[str, str]],
    *,
    on_event: EventHook | None = None,
    store: Store | None = None,
) -> RunReport:
    """``concord remap``: every staged record of ``entities`` mapped again, as one locked run.

    Nothing is pulled and nothing pushed (``options.targets`` should be empty); what changed
    goes out with the next push.
    """
    ctx = open_context(config, options, on_event=on_event, store=store)
    return locked_run(ctx, lambda: remap_stages(ctx, entities))
