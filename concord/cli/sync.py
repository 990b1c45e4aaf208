"""``concord sync``: the nightly sync once, every stage, with a progress display and summary."""

from __future__ import annotations

from typing import Annotated

import typer

from concord.cli.command import DEFAULT_CONFIG, ConfigOpt
from concord.cli.render import console, progress_events, run_summary
from concord.config import load_config
from concord.pipeline.context import RunOptions
from concord.pipeline.sync import run_sync
from concord.utc import parse_time


def sync(
    config: ConfigOpt = DEFAULT_CONFIG,
    full_refresh: Annotated[bool, typer.Option(help="Ignore watermarks.")] = False,
    until: Annotated[str | None, typer.Option(help="Window end (ISO time); default now.")] = None,
    dry_run: Annotated[bool, typer.Option(help="Plan pushes without sending.")] = False,
    push_anyway: Annotated[
        bool, typer.Option(help="Push although the receivable gate (push_gate) holds.")
    ] = False,
) -> None:
    """Run the nightly sync once: extract, map, resolve, build 360, push, reconcile."""
    try:
        window_end = parse_time(until) if until else None
    except ValueError:
        raise typer.BadParameter(f"{until!r} is not an ISO time", param_hint="--until") from None
    cfg = load_config(config)
    opts = RunOptions(
        full_refresh=full_refresh, dry_run=dry_run, window_end=window_end, push_anyway=push_anyway
    )
    with progress_events() as on_event:
        report = run_sync(cfg, opts, on_event=on_event)
    console.print(run_summary(report))
