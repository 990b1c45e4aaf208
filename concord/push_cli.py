"""``concord push``: the push stage alone, or its field-level plan (``--dry-run``)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import orjson

from concord.config import load_config
from concord.console import console
from concord.errors import ConfigError

ProgressFactory = Callable[[], AbstractContextManager[Callable[[str, dict[str, Any]], None]]]


def run_push(
    config: Path,
    targets: list[str] | None,
    *,
    dry_run: bool,
    as_json: bool,
    limit: int,
    progress: ProgressFactory,
) -> None:
    from concord.pipeline import (
        LOCK_NAME,
        LOCK_STALE_AFTER,
        begin_run,
        check_reject_ratio,
        run_report,
    )
    from concord.push import dry_run_plan, push
    from concord.push_plan import plan_as_dict, render_plan
    from concord.run import RunOptions, open_context

    cfg = load_config(config)
    names = targets or [n for n, tc in cfg.targets.items() if tc.enabled]
    unknown = sorted(set(names) - set(cfg.targets))
    if unknown:
        raise ConfigError(
            f"unknown target {', '.join(unknown)}; known: {', '.join(cfg.targets) or 'none'}"
        )
    ctx = open_context(cfg, RunOptions(trigger="cli-push", dry_run=dry_run, targets=names))
    if dry_run:
        plans = [dry_run_plan(ctx, name) for name in names]
        if as_json:
            sys.stdout.write(
                orjson.dumps(
                    [plan_as_dict(p) for p in plans], option=orjson.OPT_INDENT_2, default=str
                ).decode()
                + "\n"
            )
        else:
            for plan in plans:
                console.print(render_plan(plan, limit=limit))
        return
    ctx.store.acquire_lock(LOCK_NAME, ctx.run_id, stale_after=LOCK_STALE_AFTER)
    status = "failed"
    try:
        begin_run(ctx)
        with progress() as on_event:
            ctx.on_event = on_event
            for name in names:
                ctx.emit("stage", stage="push", scope=name)
                r = push(ctx, name)
                console.print(
                    f"push → {name}: {r['accepted']} accepted, {r['rejected']} rejected "
                    f"({r['retried']} retried), {r['merged']} merged, {r['unchanged']} unchanged, "
                    f"{r['calls']} API calls"
                )
        check_reject_ratio(ctx, run_report(ctx))
        status = "succeeded"
    finally:
        ctx.store.save_run_report(ctx.run_id, run_report(ctx), status=status)
        ctx.store.release_lock(LOCK_NAME, ctx.run_id)
