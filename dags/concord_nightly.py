"""The concord nightly sync as an Airflow DAG, built from the pipeline config (``CONCORD_CONFIG``).

Thin on purpose: the plan (sources x entities x shards, targets, pools), the run id, windows and
failure text come from ``concord.airflow``, and every task calls the same stage functions as the
CLI, passing only ids. Graph: begin (takes the store's sync lock) -> extract (mapped, one task
per pool) -> commit_shards -> map (mapped) -> resolve -> build_360 -> push (mapped per target, one
task per pool) -> reconcile -> finish (always runs; stores the run report, releases the lock,
logs the summary, fails the run if anything did). Fatal errors fail a task without retries.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

try:
    import concord  # noqa: F401
except ImportError:  # the repo checked out next to dags/, not installed as a package
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from airflow.sdk import DAG, CronDataIntervalTimetable, Param, get_current_context, task

from concord.airflow.plan import (
    EntityItem,
    ExtractItem,
    PushItem,
    TaskPlan,
    plan_tasks,
    task_id_for,
)
from concord.airflow.settings import config_path, dag_settings
from concord.airflow.tasks import (
    TaskRun,
    begin_task,
    build_360_task,
    commit_shards_task,
    concord_run_id,
    extract_task,
    failure_message,
    finish_task,
    item_for,
    map_task,
    push_task,
    reconcile_task,
    resolve_task,
)
from concord.config import load_config

log = logging.getLogger("concord.dag")


def _on_failure(context: Any) -> None:
    """Name the failing stage and source/entity/shard or target in the task log."""
    ti = context["ti"]
    task_obj = context.get("task")
    item = (getattr(task_obj, "op_kwargs", None) or {}).get("item")
    stage = ti.task_id.split("__", 1)[0]
    log.error(
        failure_message(
            stage,
            item_for(stage, item if isinstance(item, dict) else None),
            context.get("exception"),
            run_id=concord_run_id(str(context.get("run_id")), ti.dag_id),
            try_number=getattr(ti, "try_number", None),
            max_tries=getattr(ti, "max_tries", None),
        )
    )


def build_dag(path: Path) -> DAG:
    """One DAG for one pipeline config."""
    config = load_config(path)
    settings = dag_settings(config)
    plan: TaskPlan = plan_tasks(config)
    config_file = str(path.resolve())

    def current_run() -> TaskRun:
        ctx = get_current_context()
        return TaskRun.from_airflow(
            config_path=config_file,
            dag_id=settings.dag_id,
            run_id=ctx["run_id"],
            data_interval_start=ctx.get("data_interval_start"),
            data_interval_end=ctx.get("data_interval_end"),
            params=ctx.get("params"),
        )

    with DAG(
        dag_id=settings.dag_id,
        schedule=CronDataIntervalTimetable(settings.schedule, timezone="UTC"),
        start_date=settings.start_date,
        catchup=settings.catchup,
        max_active_runs=1,
        tags=settings.tags,
        doc_md=__doc__,
        params={
            "full_refresh": Param(False, type="boolean", description="Ignore watermarks."),
            "sweep": Param(
                False,
                type="boolean",
                description="List every id of each entity; tombstone those the ERP lost.",
            ),
            "dry_run": Param(False, type="boolean", description="Plan pushes, send nothing."),
            "push_anyway": Param(
                False, type="boolean", description="Push although the receivable gate holds."
            ),
            "sources": Param(None, type=["null", "array"], description="Only these sources."),
            "targets": Param(None, type=["null", "array"], description="Only these targets."),
        },
        default_args={
            "retries": settings.retries,
            "retry_delay": settings.retry_delay,
            "retry_exponential_backoff": 2.0,
            "max_retry_delay": settings.max_retry_delay,
            "on_failure_callback": _on_failure,
        },
    ) as dag:

        @task
        def begin() -> str:
            return begin_task(current_run())

        @task
        def extract(item: dict[str, Any]) -> dict[str, Any]:
            return extract_task(current_run(), ExtractItem.from_dict(item))

        @task
        def commit_shards() -> dict[str, Any]:
            return commit_shards_task(current_run(), plan.sharded)

        @task(task_id="map")
        def map_entity(item: dict[str, Any]) -> dict[str, Any]:
            return map_task(current_run(), EntityItem.from_dict(item))

        @task
        def resolve() -> dict[str, Any]:
            return resolve_task(current_run())

        @task
        def build_360() -> dict[str, Any]:
            return build_360_task(current_run())

        @task
        def push(item: dict[str, Any]) -> dict[str, Any]:
            return push_task(current_run(), PushItem.from_dict(item))

        @task
        def reconcile() -> dict[str, Any]:
            return reconcile_task(current_run())

        @task(trigger_rule="all_done", retries=0)
        def finish() -> str:
            return finish_task(current_run(), plan)

        start = begin()
        extracts = [
            extract.override(task_id=task_id_for("extract", pool), pool=pool).expand(
                item=[i.as_dict() for i in items]
            )
            for pool, items in plan.extract.items()
        ]
        committed = commit_shards()
        mapped = map_entity.expand(item=[i.as_dict() for i in plan.map]) if plan.map else None
        built = build_360()
        resolved = resolve()
        pushes = [
            push.override(task_id=task_id_for("push", pool), pool=pool).expand(
                item=[i.as_dict() for i in items]
            )
            for pool, items in plan.push.items()
        ]
        reconciled = reconcile()
        done = finish()

        start >> extracts >> committed
        if mapped is not None:
            committed >> mapped >> resolved
        else:
            committed >> resolved
        resolved >> built
        if pushes:
            built >> pushes >> reconciled
        else:
            built >> reconciled
        reconciled >> done
    return dag


dag = build_dag(config_path())
