"""A dry run that changes nothing: every stage runs against a scratch copy of the store.

The sources are pulled (reading is not changing) and every stage runs as in a real run, but on a
copy of the store (``concord.store.scratch``), and the push only plans: no CRM is called. What it
returns is the plan: the run report of the copy (pulls, maps, rejects and gates per source
entity) and, per target, the push plan with creates, updates and merges by name and ERP number.
The real store, its runs, watermarks and push state, and every CRM are as they were.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from concord.config import PipelineConfig
from concord.errors import ConcordError
from concord.pipeline.context import EventHook, RunContext, RunOptions, open_context
from concord.pipeline.lifecycle import locked_run, run_report
from concord.pipeline.reports import RunReport
from concord.pipeline.sync import run_stages
from concord.push.plan import PushPlan, dry_run_plan
from concord.store import Store
from concord.store.scratch import scratch_copy


@dataclass
class DryRun:
    """What a real run would do: its report, each target's push plan, and why it would fail."""

    report: RunReport
    plans: list[PushPlan] = field(default_factory=list)
    error: str | None = None


def run_dry(
    config: PipelineConfig, options: RunOptions, *, on_event: EventHook | None = None
) -> DryRun:
    """Run every stage on a scratch copy of the store, planning the pushes; nothing is kept.

    A run that would fail (a gate, a source down) still returns what it got to, with the error;
    past a failed gate no push is planned, as none would be sent.
    """
    options = dataclasses.replace(options, dry_run=True)
    real = Store(config.store_url)
    try:
        with scratch_copy(real) as scratch:
            ctx = open_context(config, options, on_event=on_event, store=scratch)
            error: str | None = None
            try:
                locked_run(ctx, lambda: run_stages(ctx))
            except ConcordError as exc:
                error = exc.message
            report = run_report(ctx)
            stored = scratch.run(ctx.run_id)
            for key in ("error", "failures"):
                if stored and key in (stored["report"] or {}):
                    report[key] = stored["report"][key]  # type: ignore[literal-required]
            gate = report["stages"].get("gate", {}).get("all", {})
            plans = [] if gate.get("status") == "failed" else target_plans(ctx)
            return DryRun(report, plans, error)
    finally:
        real.dispose()


def target_plans(ctx: RunContext) -> list[PushPlan]:
    """The push plan of every enabled target in the run's scope."""
    wanted = ctx.options.targets
    return [
        dry_run_plan(ctx, name)
        for name, tcfg in ctx.config.targets.items()
        if tcfg.enabled and (wanted is None or name in wanted)
    ]
