"""``concord push``: the push stage alone under the sync lock, its plan, or a resync of a CRM."""

from __future__ import annotations

from functools import partial
from typing import Annotated

import typer

from concord.cli.command import DEFAULT_CONFIG, ConfigOpt, JsonOpt, TargetsOpt, target_names
from concord.cli.render import console, print_json, progress_events, render_plan, run_summary
from concord.config import load_config
from concord.errors import ConcordError
from concord.pipeline.context import RunOptions, new_run_id, open_context
from concord.pipeline.lifecycle import locked_run
from concord.pipeline.push import push as push_stage
from concord.pipeline.push import resync
from concord.pipeline.sync import run_scoped
from concord.push.plan import dry_run_plan
from concord.store import Store


def push(
    config: ConfigOpt = DEFAULT_CONFIG,
    target: TargetsOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the field-level plan; send nothing.")
    ] = False,
    resync_crm: Annotated[
        bool,
        typer.Option(
            "--resync",
            help="Read the CRM's records back and send what is missing or different.",
        ),
    ] = False,
    full: Annotated[
        bool, typer.Option("--full", help="With --resync: re-send every customer, read nothing.")
    ] = False,
    as_json: JsonOpt = False,
    limit: Annotated[int, typer.Option(help="Rows shown per section of the plan.")] = 50,
    push_anyway: Annotated[
        bool,
        typer.Option("--push-anyway", help="Push although the receivable gate (push_gate) holds."),
    ] = False,
) -> None:
    """Push changed customers to the CRM targets, show the plan (--dry-run), or resync a CRM.

    A push trusts what each target last accepted; --resync checks that against the records
    the CRM really holds (after a CRM lost records, or for a new, empty one).
    """
    cfg = load_config(config)
    names = target_names(cfg, target)
    if full and not resync_crm:
        raise typer.BadParameter("--full goes with --resync", param_hint="--full")
    if dry_run:
        store = Store.open(cfg.store_url, create=False)
        ctx = open_context(cfg, RunOptions(dry_run=True, targets=names), store=store)
        plans = [dry_run_plan(ctx, name) for name in names]
        if as_json:
            print_json([p.as_dict() for p in plans])
        else:
            for plan in plans:
                console.print(render_plan(plan, limit=limit))
        return
    trigger = "cli-resync" if resync_crm else "cli-push"
    options = RunOptions(
        run_id=new_run_id(), trigger=trigger, targets=names, push_anyway=push_anyway
    )
    ctx = open_context(cfg, options)

    def body() -> None:
        with progress_events() as on_event:
            ctx.on_event = on_event
            for name in names:
                stage = partial(resync, ctx, name, full=full) if resync_crm else None
                run_scoped(ctx, "push", name, stage or partial(push_stage, ctx, name))

    try:
        report = locked_run(ctx, body)
    except ConcordError:
        stored = ctx.store.run(ctx.run_id)
        if stored and stored["report"]:
            console.print(run_summary(stored["report"], status=stored["status"]))
        raise
    if as_json:
        print_json(report)
        return
    console.print(run_summary(report, status="succeeded"))
