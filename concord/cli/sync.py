"""``concord sync`` and ``concord remap``: the nightly sync once, or a re-map of staged records.

Both show progress while they run (a live display on a terminal, a line per stage and at an
interval in a log) and the run summary after, also when the run failed or went partial.
``--dry-run`` runs every stage on a scratch copy of the store and prints the plan.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer

from concord.cli.command import DEFAULT_CONFIG, ConfigOpt
from concord.cli.render import console, progress_events, render_plan, run_summary
from concord.config import PipelineConfig, load_config
from concord.errors import ConcordError, ConfigError, RunFailed
from concord.pipeline.context import RunOptions, new_run_id
from concord.pipeline.dry_run import run_dry
from concord.pipeline.reports import RunReport
from concord.pipeline.sync import run_remap, run_sync
from concord.store import Store
from concord.utc import parse_time


def _summarised(cfg: PipelineConfig, run_id: str, body: Callable[[Store], RunReport]) -> None:
    """Run ``body`` on the store and print the run summary, also when the run failed."""
    store = Store.open(cfg.store_url)
    try:
        report = body(store)
    except ConcordError:
        stored = store.run(run_id)
        if stored and stored["report"]:
            console.print(run_summary(stored["report"], status=stored["status"]))
        raise
    finally:
        store.dispose()
    console.print(run_summary(report, status="succeeded"))


def sync(
    config: ConfigOpt = DEFAULT_CONFIG,
    full_refresh: Annotated[
        bool, typer.Option("--full-refresh", help="Pull everything, ignoring watermarks.")
    ] = False,
    until: Annotated[str | None, typer.Option(help="Window end (ISO time); default now.")] = None,
    sweep: Annotated[
        bool,
        typer.Option(
            "--sweep", help="Also list every id in the sources; vanished ids are deleted."
        ),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Run on a scratch copy and print the plan; change nothing."),
    ] = False,
    limit: Annotated[int, typer.Option(help="With --dry-run: rows per plan section.")] = 20,
    push_anyway: Annotated[
        bool,
        typer.Option("--push-anyway", help="Push although the receivable gate (push_gate) holds."),
    ] = False,
) -> None:
    """Run the nightly sync once: extract, map, resolve, build 360, push, reconcile.

    Exit status 0 when it succeeded, 1 when it failed, 2 when some sources or targets failed
    and the rest went through (partial).
    """
    try:
        window_end = parse_time(until) if until else None
    except ValueError:
        raise typer.BadParameter(f"{until!r} is not an ISO time", param_hint="--until") from None
    cfg = load_config(config)
    opts = RunOptions(
        run_id=new_run_id(),
        full_refresh=full_refresh,
        sweep=sweep,
        dry_run=dry_run,
        window_end=window_end,
        push_anyway=push_anyway,
    )
    if dry_run:
        with progress_events() as on_event:
            result = run_dry(cfg, opts, on_event=on_event)
        console.print(
            "[bold]Dry run:[/] nothing was written. The store, its watermarks and every CRM "
            "are as they were; this is what a run would do."
        )
        console.print(run_summary(result.report, title=f"Dry run {opts.run_id}"))
        for plan in result.plans:
            console.print(render_plan(plan, limit=limit))
        if result.error:
            raise RunFailed(f"the run would fail: {result.error}")
        return

    def body(store: Store) -> RunReport:
        with progress_events() as on_event:
            return run_sync(cfg, opts, on_event=on_event, store=store)

    _summarised(cfg, opts.run_id or "", body)


def remap(
    scope: Annotated[
        list[str] | None,
        typer.Argument(help="SOURCE or SOURCE/ENTITY (default: every source entity)."),
    ] = None,
    config: ConfigOpt = DEFAULT_CONFIG,
) -> None:
    """Map staged records again with the current mappings, then resolve and rebuild the 360.

    No source is pulled and no CRM is called; the next `concord sync` or `concord push` sends
    what changed.
    """
    cfg = load_config(config)
    entities = remap_scope(cfg, scope or [])
    opts = RunOptions(run_id=new_run_id(), trigger="cli-remap", targets=[])

    def body(store: Store) -> RunReport:
        with progress_events() as on_event:
            return run_remap(cfg, opts, entities, on_event=on_event, store=store)

    _summarised(cfg, opts.run_id or "", body)


def remap_scope(cfg: PipelineConfig, scopes: list[str]) -> list[tuple[str, str]]:
    """The (source, entity) pairs named by ``SOURCE`` or ``SOURCE/ENTITY`` (all when none)."""
    every = [(s, e) for s, scfg in cfg.sources.items() for e in scfg.entities]
    if not scopes:
        return every
    chosen: list[tuple[str, str]] = []
    for scope in scopes:
        source, _, entity = scope.partition("/")
        found = [(s, e) for s, e in every if s == source and entity in ("", e)]
        if not found:
            known = ", ".join(f"{s}/{e}" for s, e in every)
            raise ConfigError(f"{scope} is not a source entity of {cfg.path}; known: {known}")
        chosen.extend(f for f in found if f not in chosen)
    return chosen
