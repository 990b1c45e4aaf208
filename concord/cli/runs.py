"""``concord runs`` and ``concord rejects``: what past runs did and which records they refused."""

from __future__ import annotations

from typing import Annotated

import typer

from concord.cli.command import DEFAULT_CONFIG, ConfigOpt
from concord.cli.render import console, rejects_table, run_summary, runs_table
from concord.config import load_config
from concord.store import Store


def runs(
    config: ConfigOpt = DEFAULT_CONFIG,
    last: Annotated[bool, typer.Option("--last", help="Show the last run's report.")] = False,
    limit: int = 10,
) -> None:
    """List recent runs, or show the last run's summary."""
    store = Store.open(load_config(config).store_url)
    rows = store.last_runs(1 if last else limit)
    if last and rows:
        console.print(run_summary(rows[0]["report"] or {"run_id": rows[0]["run_id"]}))
        if rows[0]["report"].get("error"):
            console.print(f"[red]error:[/] {rows[0]['report']['error']}")
        return
    console.print(runs_table(rows))


def rejects(
    config: ConfigOpt = DEFAULT_CONFIG,
    run: Annotated[str | None, typer.Option(help="Only this run.")] = None,
    show_all: Annotated[bool, typer.Option("--all", help="Include resolved.")] = False,
    payload: Annotated[bool, typer.Option(help="Print each payload.")] = False,
    limit: int = 50,
) -> None:
    """Show rejected records with the reason and where (stage, source, field, mapping line)."""
    store = Store.open(load_config(config).store_url)
    rows = store.rejects(run_id=run, open_only=not show_all, limit=limit)
    console.print(rejects_table(rows, payload=payload))
