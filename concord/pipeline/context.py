"""What every stage shares: the run's options and context, compiled mappings, stage reports.

``RunContext`` is built once per process (a CLI run or one Airflow task) from the config and a
run id; stages receive it and record their report in the store under that run id, so tasks
pass ids, not data.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from concord.config import PipelineConfig
from concord.errors import MappingError
from concord.mapping import Mapping, load_mapping
from concord.model import ENTITY_MODELS
from concord.pipeline.reports import FailedStage, StageReport
from concord.store import Store
from concord.store import tables as t
from concord.utc import utcnow

EventHook = Callable[[str, dict[str, Any]], None]
"""Receives progress events: ``stage`` (stage, scope), ``page``/``mapped``/``pushed`` (records)."""


@dataclass
class RunOptions:
    """What one run should do; built by the CLI or from Airflow's context.

    ``window_start`` is the start the orchestrator asks for (Airflow's data interval); each
    extract widens it back to the entity's watermark (``concord.pipeline.extract.window_start``).
    ``push_anyway`` pushes although the receivable gate (``push_gate``) would hold the push.
    """

    run_id: str | None = None
    window_end: datetime | None = None
    window_start: datetime | None = None
    full_refresh: bool = False
    sweep: bool = False  # list every id of each entity and tombstone the vanished (--sweep)
    as_of: datetime | None = None
    trigger: str = "cli"
    sources: list[str] | None = None
    targets: list[str] | None = None
    dry_run: bool = False
    push_anyway: bool = False


@dataclass
class RunContext:
    """Everything a stage needs: config, store, loaded mappings and the run's identity."""

    config: PipelineConfig
    store: Store
    run_id: str
    options: RunOptions
    mappings: dict[tuple[str, str], Mapping] = field(default_factory=dict)
    on_event: EventHook | None = None
    started_at: datetime = field(default_factory=utcnow)
    """When this process began the run: where an extract's window ends without ``window_end``."""

    def emit(self, name: str, **data: Any) -> None:
        """Tell the progress display (if any) what is happening."""
        if self.on_event is not None:
            self.on_event(name, data)

    @property
    def as_of(self) -> datetime:
        """The moment the run computes its figures at: ``as_of``, the window end, or now."""
        return self.options.as_of or self.options.window_end or utcnow()


def new_run_id(now: datetime | None = None) -> str:
    """A fresh run id, readable and sortable by time (``run_20261102T020000_1a2b3c``)."""
    now = now or utcnow()
    return f"run_{now:%Y%m%dT%H%M%S}_{uuid.uuid4().hex[:6]}"


def load_mappings(config: PipelineConfig) -> dict[tuple[str, str], Mapping]:
    """Load and compile every mapping the config names; any error stops before I/O."""
    loaded: dict[tuple[str, str], Mapping] = {}
    for sname, source in config.sources.items():
        for ename, ent in source.entities.items():
            m = load_mapping(config.resolve_path(ent.mapping))
            if m.direction != "inbound" or m.entity not in ENTITY_MODELS:
                raise MappingError(
                    f"source entity {sname}.{ename} needs an inbound mapping to "
                    f"one of {', '.join(ENTITY_MODELS)}",
                    file=str(m.path),
                )
            loaded[(sname, ename)] = m
    for tname, target in config.targets.items():
        m = load_mapping(config.resolve_path(target.mapping))
        if m.direction != "outbound":
            raise MappingError(f"target {tname} needs an outbound mapping", file=str(m.path))
        loaded[("target", tname)] = m
        if target.person_mapping is not None:
            pm = load_mapping(config.resolve_path(target.person_mapping))
            if pm.direction != "outbound":
                raise MappingError(
                    f"target {tname}: person_mapping needs an outbound mapping", file=str(pm.path)
                )
            loaded[("target-person", tname)] = pm
    return loaded


def open_context(
    config: PipelineConfig,
    options: RunOptions,
    *,
    on_event: EventHook | None = None,
    store: Store | None = None,
) -> RunContext:
    """Compile the mappings (errors before any I/O), open the store."""
    mappings = load_mappings(config)
    store = store or Store.open(config.store_url)
    return RunContext(config, store, options.run_id or new_run_id(), options, mappings, on_event)


def record_stage(
    ctx: RunContext,
    stage: str,
    scope: str,
    started: datetime,
    report: StageReport,
    status: str = "succeeded",
) -> None:
    """Store one stage's report under the run (a rerun of the same stage replaces it)."""
    with ctx.store.begin() as conn:
        ctx.store.upsert(
            conn,
            t.stage_reports,
            [
                {
                    "run_id": ctx.run_id,
                    "stage": stage,
                    "scope": scope,
                    "status": status,
                    "report": report.as_dict(),
                    "started_at": started,
                    "finished_at": utcnow(),
                }
            ],
            ["run_id", "stage", "scope"],
        )


def record_failure(ctx: RunContext, stage: str, scope: str, started: datetime, error: str) -> None:
    """Record a failed stage, unless the stage itself stored a failed report since ``started``.

    A stage that fails part-way (a push after some batches) keeps its own report, which says
    what went through; otherwise the failure text is stored.
    """
    sr = t.stage_reports
    with ctx.store.engine.connect() as conn:
        own = conn.execute(
            select(sr.c.finished_at).where(
                sr.c.run_id == ctx.run_id,
                sr.c.stage == stage,
                sr.c.scope == scope,
                sr.c.status == "failed",
            )
        ).scalar()
    if own is not None and own >= started:
        return
    record_stage(ctx, stage, scope, started, FailedStage(error), "failed")
