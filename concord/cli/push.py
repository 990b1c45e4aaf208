"""``concord push``: the push stage alone under the sync lock, or its field-level plan."""

from __future__ import annotations

import sys
from typing import Annotated

import orjson
import typer

from concord.cli.command import DEFAULT_CONFIG, ConfigOpt
from concord.cli.render import console, progress_events, render_plan
from concord.config import load_config
from concord.errors import ConfigError
from concord.pipeline.context import RunOptions, open_context
from concord.pipeline.lifecycle import locked_run
from concord.pipeline.push import push as push_stage
from concord.push.plan import dry_run_plan


def push(
    config: ConfigOpt = DEFAULT_CONFIG,
    target: Annotated[
        list[str] | None, typer.Option("--target", "-t", help="Only this target (repeatable).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the field-level plan; send nothing.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="With --dry-run: the plan as JSON.")
    ] = False,
    limit: Annotated[int, typer.Option(help="Rows shown per section of the plan.")] = 50,
    push_anyway: Annotated[
        bool, typer.Option(help="Push although the receivable gate (push_gate) holds.")
    ] = False,
) -> None:
    """Push changed customers to the CRM targets, or show what would change (--dry-run)."""
    cfg = load_config(config)
    names = target or [n for n, tc in cfg.targets.items() if tc.enabled]
    unknown = sorted(set(names) - set(cfg.targets))
    if unknown:
        raise ConfigError(
            f"unknown target {', '.join(unknown)}; known: {', '.join(cfg.targets) or 'none'}"
        )
    options = RunOptions(
        trigger="cli-push", dry_run=dry_run, targets=names, push_anyway=push_anyway
    )
    ctx = open_context(cfg, options)
    if dry_run:
        plans = [dry_run_plan(ctx, name) for name in names]
        if as_json:
            text = orjson.dumps(
                [p.as_dict() for p in plans], option=orjson.OPT_INDENT_2, default=str
            )
            sys.stdout.write(text.decode() + "\n")
        else:
            for plan in plans:
                console.print(render_plan(plan, limit=limit))
        return

    def body() -> None:
        with progress_events() as on_event:
            ctx.on_event = on_event
            for name in names:
                ctx.emit("stage", stage="push", scope=name)
                r = push_stage(ctx, name)
                console.print(
                    f"push → {name}: {r.accepted} accepted, {r.rejected} rejected "
                    f"({r.retried} retried), {r.merged} merged, {r.unchanged} unchanged, "
                    f"{r.calls} API calls"
                )

    locked_run(ctx, body)
