"""Airflow task bodies: each takes plain ids, opens its own context and calls one stage.

The concord run id derives from Airflow's run id (deterministic, so a retried task or a rerun
night writes to the same run). The run holds the store's sync lock, like a CLI sync: ``begin``
takes it, every task takes it again (the same run renews it; another run's lock makes the task
wait for a retry) and heartbeats it while working, ``finish`` releases it whatever happened. A
task that fails records a failed stage report naming the stage and the source/entity/shard or
target, then raises: a fatal error as ``AirflowFailException`` (no retries), a retriable one as
it is (``concord.airflow.failures``). ``finish`` always runs, stores the run report
(``concord.pipeline.lifecycle.finish_run``) and fails the DAG run when a stage did not complete
or rejects passed the configured ratio. Every task first puts redaction under all logging.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from concord.airflow.failures import airflow_failures
from concord.airflow.plan import (
    EntityItem,
    ExtractItem,
    PushItem,
    ShardedEntity,
    TaskItem,
    TaskPlan,
)
from concord.airflow.settings import DEFAULT_DAG_ID
from concord.config import load_config
from concord.errors import ConcordError, RunFailed
from concord.hashing import digest
from concord.pipeline.build_360 import build_360
from concord.pipeline.context import RunContext, RunOptions, open_context, record_stage
from concord.pipeline.extract import extract, window_start
from concord.pipeline.lifecycle import (
    begin_run,
    finish_run,
    heartbeating,
    release_lock,
    run_report,
    take_lock,
)
from concord.pipeline.map import map_entity
from concord.pipeline.map_batches import MapPool
from concord.pipeline.push import push
from concord.pipeline.reconcile import reconcile
from concord.pipeline.reports import FailedStage, RunReport, StageReport
from concord.pipeline.resolve import resolve
from concord.pipeline.shards import commit_shards, extract_shard, shard_windows
from concord.redact import install_log_redaction, redact
from concord.utc import as_utc, utcnow

log = logging.getLogger("concord.airflow")

MAX_RUN_ID = 64
R = TypeVar("R", bound=StageReport)


def concord_run_id(orchestrator_run_id: str, dag_id: str = DEFAULT_DAG_ID) -> str:
    """A concord run id from Airflow's run id: the same night always maps to the same id.

    Readable prefix plus a hash of the full id, within the store's 64 characters.
    """
    hashed = digest(f"{dag_id}:{orchestrator_run_id}".encode(), size=5)
    readable = re.sub(r"[^A-Za-z0-9]+", "_", orchestrator_run_id).strip("_")
    head = f"af_{readable}"[: MAX_RUN_ID - len(hashed) - 1]
    return f"{head}_{hashed}"


@dataclass(frozen=True)
class TaskRun:
    """What every task of one DAG run shares, all plain values (no data passes between tasks)."""

    config_path: str
    run_id: str
    window_start: datetime | None
    window_end: datetime | None
    full_refresh: bool = False
    sweep: bool = False
    dry_run: bool = False
    push_anyway: bool = False
    sources: list[str] | None = None
    targets: list[str] | None = None
    lock_owner: str | None = None

    @classmethod
    def from_airflow(
        cls,
        *,
        config_path: str,
        dag_id: str,
        run_id: str,
        data_interval_start: datetime | None,
        data_interval_end: datetime | None,
        params: Mapping[str, Any] | None = None,
    ) -> TaskRun:
        """The run as Airflow's task context describes it (run id, data interval, params)."""
        params = params or {}
        return cls(
            config_path=config_path,
            run_id=concord_run_id(run_id, dag_id),
            window_start=as_utc(data_interval_start),
            window_end=as_utc(data_interval_end),
            full_refresh=bool(params.get("full_refresh", False)),
            sweep=bool(params.get("sweep", False)),
            dry_run=bool(params.get("dry_run", False)),
            push_anyway=bool(params.get("push_anyway", False)),
            sources=list(params["sources"]) if params.get("sources") else None,
            targets=list(params["targets"]) if params.get("targets") else None,
            lock_owner=f"airflow {dag_id} {run_id}"[:200],
        )

    def options(self) -> RunOptions:
        """The run options every task of this run uses."""
        return RunOptions(
            run_id=self.run_id,
            window_start=self.window_start,
            window_end=self.window_end,
            full_refresh=self.full_refresh,
            sweep=self.sweep,
            trigger="airflow",
            sources=self.sources,
            targets=self.targets,
            dry_run=self.dry_run,
            push_anyway=self.push_anyway,
        )

    def selects(self, item: TaskItem) -> bool:
        """Whether the run's ``sources``/``targets`` params include this item."""
        if isinstance(item, PushItem):
            return self.targets is None or item.target in self.targets
        assert isinstance(item, EntityItem)
        return self.sources is None or item.source in self.sources


def item_for(stage: str, data: Mapping[str, Any] | None) -> TaskItem | None:
    """The typed item of a task of ``stage`` from what Airflow passed it (None: no item)."""
    if not data:
        return None
    kinds: dict[str, type[TaskItem]] = {"extract": ExtractItem, "map": EntityItem, "push": PushItem}
    kind = kinds.get(stage)
    return kind.from_dict(dict(data)) if kind else None


def failure_message(
    stage: str,
    item: TaskItem | None,
    error: BaseException | str | None,
    *,
    run_id: str | None = None,
    try_number: int | None = None,
    max_tries: int | None = None,
) -> str:
    """One line naming the failing stage and source/entity/shard or target, and why."""
    where = item.where if item is not None else "the whole run"
    reason = (
        error.message if isinstance(error, ConcordError) else redact(str(error or "unknown error"))
    )
    text = f"concord {stage} failed for {where}"
    if run_id:
        text += f" (run {run_id}"
        if try_number is not None:
            text += f", try {try_number}" + (f" of {max_tries}" if max_tries else "")
        text += ")"
    return f"{text}: {reason}"


@contextmanager
def stage_context(run: TaskRun) -> Iterator[RunContext]:
    """A RunContext for one task (config loaded, mappings compiled, store migrated)."""
    install_log_redaction()  # again: Airflow configures logging as each task starts
    ctx = open_context(load_config(run.config_path), run.options())
    try:
        yield ctx
    finally:
        ctx.store.dispose()


@contextmanager
def locked_task(run: TaskRun) -> Iterator[RunContext]:
    """A task's context holding the run's sync lock, heartbeated while the task works.

    Fatal errors leave as ``AirflowFailException``; ``LockBusy`` (another run writes the store)
    is retriable, so Airflow tries the task again later.
    """
    with airflow_failures(), stage_context(run) as ctx:
        take_lock(ctx, run.lock_owner)
        with heartbeating(ctx):
            yield ctx


def _guarded(ctx: RunContext, stage: str, item: TaskItem | None, body: Callable[[], R]) -> R:
    """Run a stage; on error record a failed stage report naming what failed, then re-raise."""
    started = utcnow()
    try:
        return body()
    except Exception as exc:
        text = failure_message(stage, item, exc, run_id=ctx.run_id)
        log.error(text)
        scope = item.scope if item is not None else "all"
        try:
            record_stage(ctx, stage, scope, started, FailedStage(text), "failed")
        except Exception:  # the store itself may be what failed; the task error says why
            log.exception("could not record the failed stage")
        raise


def _skipped(reason: str) -> dict[str, Any]:
    return {"skipped": reason}


def begin_task(run: TaskRun) -> str:
    """Take the sync lock for the run and register it with its data interval in the store.

    A rerun of the night reuses its row; a night whose lock another run holds is retried.
    """
    with locked_task(run) as ctx:
        begin_run(ctx)
    return run.run_id


def extract_task(run: TaskRun, item: ExtractItem) -> dict[str, Any]:
    """Extract one source entity, or one shard of it, over the run's incremental window."""
    if not run.selects(item):
        return _skipped("source not selected")
    with locked_task(run) as ctx:
        if item.shard is None:
            return _guarded(
                ctx, "extract", item, lambda: extract(ctx, item.source, item.entity)
            ).as_dict()
        ecfg = ctx.config.sources[item.source].entities[item.entity]
        mark = ctx.store.watermark(item.source, item.entity).cursor
        full = run.full_refresh or ecfg.full_refresh
        start = window_start(run.window_start, mark, full_refresh=full)
        spec = ecfg.shard_spec
        since = spec.since if spec else None
        shard = shard_windows(start, run.window_end, item.shards, since)[item.shard]
        return _guarded(
            ctx, "extract_shard", item, lambda: extract_shard(ctx, item.source, item.entity, shard)
        ).as_dict()


def commit_shards_task(run: TaskRun, sharded: list[ShardedEntity]) -> dict[str, Any]:
    """Advance the watermark of every sharded entity whose shards all committed."""
    out: dict[str, Any] = {}
    with locked_task(run) as ctx:
        for item in sharded:
            if not run.selects(item):
                continue

            def commit(item: ShardedEntity = item) -> StageReport:
                return commit_shards(ctx, item.source, item.entity, item.shards)

            out[item.scope] = _guarded(ctx, "extract", item, commit).as_dict()
    return out


def map_task(run: TaskRun, item: EntityItem) -> dict[str, Any]:
    """Map one source entity's pending records (a big entity's in worker processes)."""
    with locked_task(run) as ctx, MapPool(ctx.config.map_workers) as pool:
        return _guarded(
            ctx, "map", item, lambda: map_entity(ctx, item.source, item.entity, pool=pool)
        ).as_dict()


def resolve_task(run: TaskRun) -> dict[str, Any]:
    """Resolve identities over every canonical customer."""
    with locked_task(run) as ctx:
        return _guarded(ctx, "resolve", None, lambda: resolve(ctx)).as_dict()


def build_360_task(run: TaskRun) -> dict[str, Any]:
    """Build the customer-360 rows."""
    with locked_task(run) as ctx:
        return _guarded(ctx, "build_360", None, lambda: build_360(ctx)).as_dict()


def push_task(run: TaskRun, item: PushItem) -> dict[str, Any]:
    """Push changed customers to one target."""
    if not run.selects(item):
        return _skipped("target not selected")
    with locked_task(run) as ctx:
        return _guarded(ctx, "push", item, lambda: push(ctx, item.target)).as_dict()


def reconcile_task(run: TaskRun) -> dict[str, Any]:
    """Reconcile counts and money of the run."""
    with locked_task(run) as ctx:
        return _guarded(ctx, "reconcile", None, lambda: reconcile(ctx)).as_dict()


def missing_stages(report: Mapping[str, Any], plan: TaskPlan, run: TaskRun) -> list[str]:
    """Planned stage scopes that did not report success in this run."""
    stages = report.get("stages", {})
    missing: list[str] = []
    for stage, scopes in plan.expected_scopes.items():
        for scope in scopes:
            if stage in ("extract", "map") and run.sources is not None:
                if scope.split("/", 1)[0] not in run.sources:
                    continue
            if stage == "push" and run.targets is not None and scope not in run.targets:
                continue
            body = stages.get(stage, {}).get(scope)
            if body is None or body.get("status") != "succeeded":
                missing.append(f"{stage} {scope}")
    return missing


def finish_task(run: TaskRun, plan: TaskPlan) -> str:
    """Assemble and store the run report, release the lock, return the report as text.

    Runs whatever happened upstream, so a failed night is marked failed in the store with the
    stages that did not complete, rejects past the configured ratio fail the run, and the sync
    lock is released even then (only this run's: a night refused by the lock releases nothing).
    """
    with airflow_failures(), stage_context(run) as ctx:
        try:
            report = run_report(ctx)
            missing = missing_stages(report, plan, run)
            error = "stages did not complete: " + ", ".join(missing) if missing else None
            report = finish_run(ctx, error=error, report=report)
        finally:
            release_lock(ctx)
        text = summary_text(report)
        log.info("concord run summary\n%s", text)
        if "error" in report:
            raise RunFailed(f"run {run.run_id} failed: {report['error']}")
        return text


def summary_text(report: RunReport, width: int = 110) -> str:
    """The CLI's run summary table as plain text for a task log."""
    from rich.console import Console

    from concord.cli.render import run_summary

    buffer = io.StringIO()
    Console(file=buffer, width=width, color_system=None, force_terminal=False).print(
        run_summary(report)
    )
    return buffer.getvalue()
