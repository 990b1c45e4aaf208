"""How an orchestrator (Airflow) runs the nightly sync: task plan, run ids, shards and task bodies.

The DAG file only wires tasks; everything it needs to decide lives here and is testable without
Airflow: which extract/map/push tasks exist (sources x entities x shards, grouped by pool), the
concord run id derived from the orchestrator's run id (deterministic, so a retried task or a rerun
night writes to the same run), the incremental window of each task (the data interval, widened to
the entity's watermark so a missed night is not lost), the time windows of shards, and the failure
text naming the source and stage. Task bodies take plain ids, open their own context and call the
same stage functions as the CLI (``concord.pipeline``).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from concord.config import PipelineConfig, load_config
from concord.errors import ConcordError, ConfigError, RunFailed
from concord.extract import Shard, commit_shards, extract_shard
from concord.run import RunContext, RunOptions, record_stage
from concord.utc import parse_time, utcnow

log = logging.getLogger("concord.orchestration")

DEFAULT_DAG_ID = "concord_nightly"
DEFAULT_POOL = "default_pool"
MAX_RUN_ID = 64
Stage = Literal[
    "begin",
    "extract",
    "commit_shards",
    "map",
    "resolve",
    "build_360",
    "push",
    "reconcile",
    "finish",
]


def shard_windows(
    start: datetime | None, end: datetime | None, count: int, since: datetime | None = None
) -> list[Shard]:
    """Split [start, end) into ``count`` contiguous windows that together cover it exactly.

    When ``start`` is None (first load) the windows divide [since, end) and the first one is
    open at its start; when the window cannot be divided (no lower bound, or no end) the first
    shard takes it all and the others are empty.
    """
    lower = start or since
    if lower is None or end is None or lower >= end:
        first = Shard(0, count, start, end)
        empty_at = end or start
        return [first, *(Shard(i, count, empty_at, empty_at) for i in range(1, count))]
    step = (end - lower) / count
    bounds = [lower + step * i for i in range(count)] + [end]
    shards = [Shard(i, count, bounds[i], bounds[i + 1]) for i in range(count)]
    shards[0] = Shard(0, count, start, bounds[1])
    return shards


def concord_run_id(orchestrator_run_id: str, dag_id: str = DEFAULT_DAG_ID) -> str:
    """A concord run id from Airflow's run id: the same night always maps to the same id.

    Readable prefix plus a hash of the full id, within the store's 64 characters.
    """
    digest = hashlib.blake2b(f"{dag_id}:{orchestrator_run_id}".encode(), digest_size=5).hexdigest()
    readable = re.sub(r"[^A-Za-z0-9]+", "_", orchestrator_run_id).strip("_")
    head = f"af_{readable}"[: MAX_RUN_ID - len(digest) - 1]
    return f"{head}_{digest}"


def incremental_start(
    interval_start: datetime | None, watermark: str | None, *, full_refresh: bool
) -> datetime | None:
    """Where an extract's window starts: the data interval, widened back to the watermark.

    Never synced (or a full refresh): from the beginning. Otherwise the earlier of the interval
    start and the watermark, so nights missed while Airflow was down are pulled too; records
    pulled twice are staged as unchanged, so this stays idempotent.
    """
    if full_refresh or watermark is None:
        return None
    try:
        mark = parse_time(watermark)
    except ValueError:
        return interval_start
    if interval_start is None:
        return mark
    return min(interval_start, mark)


# -- the task plan -------------------------------------------------------------------------------


def _item_key(item: Mapping[str, Any]) -> str:
    return f"{item['source']}/{item['entity']}"


@dataclass(frozen=True)
class TaskPlan:
    """Which mapped tasks a DAG has, as plain dicts Airflow can expand over (ids, not data).

    ``extract`` and ``push`` are grouped by pool: Airflow sets the pool per task, so each pool
    gets its own mapped task.
    """

    extract: dict[str, list[dict[str, Any]]]
    map: list[dict[str, Any]]
    push: dict[str, list[dict[str, Any]]]
    sharded: list[dict[str, Any]]

    @property
    def expected_scopes(self) -> dict[str, list[str]]:
        """Stage scopes a complete run reports (what ``finish`` checks)."""
        return {
            "extract": [_item_key(m) for m in self.map],
            "map": [_item_key(m) for m in self.map],
            "resolve": ["all"],
            "build_360": ["all"],
            "push": [p["target"] for items in self.push.values() for p in items],
            "reconcile": ["all"],
        }


def plan_tasks(config: PipelineConfig) -> TaskPlan:
    """Mapped task items from the config: enabled sources x entities (x shards), targets."""
    extract: dict[str, list[dict[str, Any]]] = {}
    maps: list[dict[str, Any]] = []
    sharded: list[dict[str, Any]] = []
    for sname, scfg in config.sources.items():
        if not scfg.enabled:
            continue
        pool = scfg.pool or DEFAULT_POOL
        for ename, ecfg in scfg.entities.items():
            if not ecfg.enabled:
                continue
            spec = ecfg.shard_spec
            maps.append({"source": sname, "entity": ename})
            if spec is None:
                extract.setdefault(pool, []).append(
                    {"source": sname, "entity": ename, "shard": None, "shards": 1}
                )
                continue
            sharded.append({"source": sname, "entity": ename, "shards": spec.count})
            for i in range(spec.count):
                extract.setdefault(pool, []).append(
                    {"source": sname, "entity": ename, "shard": i, "shards": spec.count}
                )
    push: dict[str, list[dict[str, Any]]] = {}
    for tname, tcfg in config.targets.items():
        if tcfg.enabled:
            push.setdefault(tcfg.pool or DEFAULT_POOL, []).append({"target": tname})
    return TaskPlan(extract, maps, push, sharded)


def task_id_for(stage: str, pool: str) -> str:
    """``extract`` for the default pool, ``extract__<pool>`` for a named one."""
    if pool == DEFAULT_POOL:
        return stage
    return f"{stage}__{re.sub(r'[^A-Za-z0-9_.-]+', '_', pool)}"


# -- DAG settings ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DagSettings:
    """DAG-level knobs: from the pipeline config (schedule) and ``CONCORD_DAG_*`` variables."""

    dag_id: str
    schedule: str
    start_date: datetime
    catchup: bool
    retries: int
    retry_delay: timedelta
    max_retry_delay: timedelta
    tags: list[str] = field(default_factory=lambda: ["concord"])


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name}={raw!r} is not a whole number") from None


def dag_settings(config: PipelineConfig, env: Mapping[str, str] | None = None) -> DagSettings:
    env = os.environ if env is None else env
    start = env.get("CONCORD_DAG_START_DATE") or "2026-01-01T00:00:00Z"
    try:
        start_date = parse_time(start)
    except ValueError:
        raise ConfigError(f"CONCORD_DAG_START_DATE={start!r} is not an ISO time") from None
    return DagSettings(
        dag_id=env.get("CONCORD_DAG_ID") or DEFAULT_DAG_ID,
        schedule=config.schedule or "0 2 * * *",
        start_date=start_date,
        catchup=(env.get("CONCORD_DAG_CATCHUP") or "false").lower() in ("1", "true", "yes"),
        retries=_env_int(env, "CONCORD_DAG_RETRIES", 3),
        retry_delay=timedelta(seconds=_env_int(env, "CONCORD_DAG_RETRY_DELAY_SECONDS", 60)),
        max_retry_delay=timedelta(
            seconds=_env_int(env, "CONCORD_DAG_MAX_RETRY_DELAY_SECONDS", 1800)
        ),
    )


def config_path(env: Mapping[str, str] | None = None) -> Path:
    """The pipeline config the DAG is built from: ``CONCORD_CONFIG`` or the repo's concord.yaml."""
    env = os.environ if env is None else env
    raw = env.get("CONCORD_CONFIG")
    return Path(raw) if raw else Path(__file__).resolve().parent.parent / "concord.yaml"


# -- task bodies ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskRun:
    """What every task of one DAG run shares, all plain values (no data passes between tasks)."""

    config_path: str
    run_id: str
    window_start: datetime | None
    window_end: datetime | None
    full_refresh: bool = False
    dry_run: bool = False
    sources: list[str] | None = None
    targets: list[str] | None = None

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
        params = params or {}
        return cls(
            config_path=config_path,
            run_id=concord_run_id(run_id, dag_id),
            window_start=_aware(data_interval_start),
            window_end=_aware(data_interval_end),
            full_refresh=bool(params.get("full_refresh", False)),
            dry_run=bool(params.get("dry_run", False)),
            sources=list(params["sources"]) if params.get("sources") else None,
            targets=list(params["targets"]) if params.get("targets") else None,
        )

    def options(self, window_start: datetime | None = None) -> RunOptions:
        return RunOptions(
            run_id=self.run_id,
            window_start=window_start,
            window_end=self.window_end,
            full_refresh=self.full_refresh,
            trigger="airflow",
            sources=self.sources,
            targets=self.targets,
            dry_run=self.dry_run,
        )


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _scope(stage: str, item: Mapping[str, Any] | None) -> str:
    if not item:
        return "all"
    if "target" in item:
        return str(item["target"])
    scope = _item_key(item)
    if stage in ("extract", "extract_shard") and item.get("shard") is not None:
        scope += f"#{item['shard']}/{item['shards']}"
    return scope


def failure_message(
    stage: str,
    item: Mapping[str, Any] | None,
    error: BaseException | str | None,
    *,
    run_id: str | None = None,
    try_number: int | None = None,
    max_tries: int | None = None,
) -> str:
    """One line naming the failing stage and source/entity/shard or target, and why."""
    if item and "target" in item:
        where = f"target {item['target']}"
    elif item:
        where = f"source {item['source']} entity {item['entity']}"
        if item.get("shard") is not None:
            where += f" shard {item['shard']}/{item['shards']}"
    else:
        where = "the whole run"
    reason = error.message if isinstance(error, ConcordError) else str(error or "unknown error")
    text = f"concord {stage} failed for {where}"
    if run_id:
        text += f" (run {run_id}"
        if try_number is not None:
            text += f", try {try_number}" + (f" of {max_tries}" if max_tries else "")
        text += ")"
    return f"{text}: {reason}"


@contextmanager
def stage_context(run: TaskRun, window_start: datetime | None = None) -> Iterator[RunContext]:
    """A RunContext for one task (config loaded, mappings compiled, store migrated)."""
    from concord.pipeline import open_context

    ctx = open_context(load_config(run.config_path), run.options(window_start))
    try:
        yield ctx
    finally:
        ctx.store.dispose()


def _guarded(
    ctx: RunContext, stage: str, item: Mapping[str, Any] | None, body: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """Run a stage; on error record a failed stage report naming what failed, then re-raise."""
    started = utcnow()
    try:
        return body()
    except Exception as exc:
        text = failure_message(stage, item, exc, run_id=ctx.run_id)
        log.error(text)
        try:
            record_stage(ctx, stage, _scope(stage, item), started, {"error": text}, "failed")
        except Exception:  # the store itself may be what failed; the task error says why
            log.exception("could not record the failed stage")
        raise


def _selected(run: TaskRun, item: Mapping[str, Any]) -> bool:
    if "target" in item:
        return run.targets is None or item["target"] in run.targets
    return run.sources is None or item["source"] in run.sources


def begin_task(run: TaskRun) -> str:
    """Register the run and its data interval in the store (a rerun of the night reuses its row)."""
    from concord.pipeline import begin_run

    with stage_context(run, run.window_start) as ctx:
        begin_run(ctx)
    return run.run_id


def extract_task(run: TaskRun, item: Mapping[str, Any]) -> dict[str, Any]:
    """Extract one source entity, or one shard of it, over the run's incremental window."""
    if not _selected(run, item):
        return {"skipped": "source not selected"}
    with stage_context(run) as probe:
        ecfg = probe.config.sources[item["source"]].entities[item["entity"]]
        mark = probe.store.watermark(item["source"], item["entity"]).cursor
        full = run.full_refresh or ecfg.full_refresh
        start = incremental_start(run.window_start, mark, full_refresh=full)
        if item.get("shard") is None:
            from concord.pipeline import extract

            def whole() -> dict[str, Any]:
                probe.options.window_start = start
                return extract(probe, item["source"], item["entity"])

            return _guarded(probe, "extract", item, whole)
        spec = ecfg.shard_spec
        since = spec.since if spec else None
        shard = shard_windows(start, run.window_end, int(item["shards"]), since)[int(item["shard"])]
        return _guarded(
            probe,
            "extract_shard",
            item,
            lambda: extract_shard(probe, item["source"], item["entity"], shard),
        )


def commit_shards_task(run: TaskRun, sharded: list[dict[str, Any]]) -> dict[str, Any]:
    """Advance the watermark of every sharded entity whose shards all committed."""
    out: dict[str, Any] = {}
    with stage_context(run) as ctx:
        for item in sharded:
            if not _selected(run, item):
                continue
            source, entity, count = item["source"], item["entity"], int(item["shards"])

            def commit(source: str = source, entity: str = entity, count: int = count) -> Any:
                return commit_shards(ctx, source, entity, count)

            out[_item_key(item)] = _guarded(ctx, "extract", item, commit)
    return out


def map_task(run: TaskRun, item: Mapping[str, Any]) -> dict[str, Any]:
    from concord.pipeline import map_entity

    with stage_context(run) as ctx:
        return _guarded(ctx, "map", item, lambda: map_entity(ctx, item["source"], item["entity"]))


def resolve_task(run: TaskRun) -> dict[str, Any]:
    from concord.pipeline import resolve

    with stage_context(run) as ctx:
        return _guarded(ctx, "resolve", None, lambda: resolve(ctx))


def build_360_task(run: TaskRun) -> dict[str, Any]:
    from concord.pipeline import build_360

    with stage_context(run) as ctx:
        return _guarded(ctx, "build_360", None, lambda: build_360(ctx))


def push_task(run: TaskRun, item: Mapping[str, Any]) -> dict[str, Any]:
    from concord.pipeline import push

    if not _selected(run, item):
        return {"skipped": "target not selected"}
    with stage_context(run) as ctx:
        return _guarded(ctx, "push", item, lambda: push(ctx, item["target"]))


def reconcile_task(run: TaskRun) -> dict[str, Any]:
    from concord.pipeline import reconcile

    with stage_context(run) as ctx:
        return _guarded(ctx, "reconcile", None, lambda: reconcile(ctx))


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
    """Assemble and store the run report, return it as text for the task log; fail when incomplete.

    Runs whatever happened upstream, so a failed night is marked failed in the store with the
    stages that did not complete, and rejects past the configured ratio fail the run.
    """
    from concord.pipeline import check_reject_ratio, run_report

    with stage_context(run) as ctx:
        report = run_report(ctx)
        missing = missing_stages(report, plan, run)
        error: str | None = None
        if missing:
            error = "stages did not complete: " + ", ".join(missing)
        else:
            try:
                check_reject_ratio(ctx, report)
            except RunFailed as exc:
                error = exc.message
        if error:
            report["error"] = error
        ctx.store.save_run_report(run.run_id, report, status="failed" if error else "succeeded")
        text = summary_text(report)
        log.info("concord run summary\n%s", text)
        if error:
            raise RunFailed(f"run {run.run_id} failed: {error}")
        return text


def summary_text(report: Mapping[str, Any], width: int = 110) -> str:
    """The CLI's run summary table as plain text for a task log."""
    from rich.console import Console

    from concord.console import run_summary

    buffer = io.StringIO()
    Console(file=buffer, width=width, color_system=None, force_terminal=False).print(
        run_summary(dict(report))
    )
    return buffer.getvalue()


def worker_hostname() -> str:
    """Airflow ``[core] hostname_callable``: ``CONCORD_WORKER_NAME`` when set, else the FQDN.

    Lets several Celery workers on one machine (the scale-out demo) show up as distinct hosts in
    the task instances.
    """
    import socket

    return os.environ.get("CONCORD_WORKER_NAME") or socket.getfqdn()
