"""``concord runs`` and ``concord rejects``: what past runs did and which records they refused."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from concord.cli.command import DEFAULT_CONFIG, ConfigOpt, JsonOpt
from concord.cli.render import (
    console,
    print_json,
    reject_row,
    rejects_view,
    run_row,
    run_summary,
    runs_table,
)
from concord.config import PipelineConfig, load_config
from concord.errors import ConcordError
from concord.pipeline.context import load_mappings
from concord.store import Store


def runs(
    config: ConfigOpt = DEFAULT_CONFIG,
    last: Annotated[bool, typer.Option("--last", help="Show the last run's report.")] = False,
    limit: Annotated[int, typer.Option(help="Runs to list.")] = 10,
    as_json: JsonOpt = False,
) -> None:
    """List recent runs, or show the last run's summary."""
    store = Store.open(load_config(config).store_url, create=False)
    rows = store.last_runs(1 if last else limit)
    if as_json:
        print_json(run_row(rows[0]) if last and rows else [run_row(r) for r in rows])
        return
    if last and rows:
        report = rows[0]["report"] or {"run_id": rows[0]["run_id"]}
        console.print(run_summary(report, status=rows[0]["status"]))
        return
    console.print(runs_table(rows))


def failing_paths(config: PipelineConfig, rows: list[dict[str, Any]]) -> dict[int, set[str]]:
    """Reject id -> the source paths of its payload that failed (by the mapping's field).

    A map reject names the mapping's output field; its source paths come from the mapping as
    configured now. An extract reject failed on the id field, a push reject on its property.
    """
    try:
        mappings = load_mappings(config)
    except ConcordError:
        mappings = {}
    found: dict[int, set[str]] = {}
    for r in rows:
        if not r["field"]:
            continue
        mapping = mappings.get((r["source"], r["entity"]))
        if r["stage"] == "map" and mapping is not None:
            found[r["id"]] = set(mapping.source_paths(r["field"])) or {r["field"]}
        else:
            found[r["id"]] = {r["field"]}
    return found


def rejects(
    config: ConfigOpt = DEFAULT_CONFIG,
    run: Annotated[str | None, typer.Option(help="Only this run.")] = None,
    show_all: Annotated[bool, typer.Option("--all", help="Include resolved.")] = False,
    payload: Annotated[
        bool, typer.Option("--payload", help="Print each payload whole, the failing path marked.")
    ] = False,
    limit: Annotated[int, typer.Option(help="Rejects to show.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Show rejected records with the reason and where (stage, source, field, mapping line)."""
    cfg = load_config(config)
    store = Store.open(cfg.store_url, create=False)
    rows = store.rejects(run_id=run, open_only=not show_all, limit=limit)
    paths = failing_paths(cfg, rows)
    if as_json:
        print_json([reject_row(r, paths.get(r["id"], set())) for r in rows])
        return
    console.print(rejects_view(rows, payload=payload, paths=paths))
