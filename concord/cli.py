"""The ``concord`` command line: thin commands over library calls, output through one console.

Errors print one clear line (``--verbose`` shows the trace) and exit non-zero; long work shows a
progress bar.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import orjson
import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from concord.config import load_config
from concord.console import console, customers_table, err_console, run_summary
from concord.errors import ConcordError
from concord.mapping_cli import mappings_app
from concord.redact import install_log_redaction
from concord.utc import parse_time

app = typer.Typer(
    help="concord: one customer across ERPs and CRMs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
customers_app = typer.Typer(help="Look up golden customers.", no_args_is_help=True)
app.add_typer(customers_app, name="customers")
app.add_typer(mappings_app, name="mappings")

ConfigOpt = Annotated[
    Path, typer.Option("--config", "-c", help="Pipeline config file.", envvar="CONCORD_CONFIG")
]
DEFAULT_CONFIG = Path("concord.yaml")
T = TypeVar("T")
_state: dict[str, bool] = {"verbose": False}


@app.callback()
def main(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show tracebacks and debug logs.")
    ] = False,
) -> None:
    _state["verbose"] = verbose
    install_log_redaction()
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


def guarded(fn: Callable[[], T]) -> T:
    """Run a command body; a ConcordError becomes one red line and exit code 1."""
    try:
        return fn()
    except ConcordError as exc:
        if _state["verbose"]:
            err_console.print_exception()
        err_console.print(f"[bold red]error:[/] {exc.message}")
        raise typer.Exit(1) from None


@contextmanager
def progress_events() -> Iterator[Callable[[str, dict[str, Any]], None]]:
    """A rich progress display fed by pipeline events."""
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:>8,.0f} records"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as progress:
        tasks: dict[str, Any] = {}

        def on_event(name: str, data: dict[str, Any]) -> None:
            if name == "stage":
                key = f"{data['stage']} {data['scope']}"
                tasks[key] = progress.add_task(key, total=None)
                tasks["current"] = tasks[key]
            elif name in ("page", "mapped", "pushed") and "current" in tasks:
                progress.advance(tasks["current"], data.get("records", 0))

        yield on_event


@app.command()
def sync(
    config: ConfigOpt = DEFAULT_CONFIG,
    full_refresh: Annotated[bool, typer.Option(help="Ignore watermarks.")] = False,
    until: Annotated[str | None, typer.Option(help="Window end (ISO time); default now.")] = None,
    dry_run: Annotated[bool, typer.Option(help="Plan pushes without sending.")] = False,
) -> None:
    """Run the nightly sync once: extract, map, resolve, build 360, push, reconcile."""
    from concord.pipeline import RunOptions, run_sync

    def body() -> None:
        cfg = load_config(config)
        opts = RunOptions(
            full_refresh=full_refresh,
            dry_run=dry_run,
            window_end=parse_time(until) if until else None,
        )
        with progress_events() as on_event:
            report = run_sync(cfg, opts, on_event=on_event)
        console.print(run_summary(report))

    guarded(body)


@app.command("push")
def push_command(
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
) -> None:
    """Push changed customers to the CRM targets, or show what would change (--dry-run)."""
    from concord.push_cli import run_push

    guarded(
        lambda: run_push(
            config, target, dry_run=dry_run, as_json=as_json, limit=limit, progress=progress_events
        )
    )


@app.command()
def demo(
    config: ConfigOpt = Path("concord.yaml"),
    customers: Annotated[int, typer.Option(help="Sandbox customers to generate.")] = 60,
) -> None:
    """Start the sandbox ERP and CRM on loopback, run one full sync, show the result."""
    from sandbox.demo import run_demo

    guarded(lambda: run_demo(config, customers=customers))


@app.command()
def runs(
    config: ConfigOpt = DEFAULT_CONFIG,
    last: Annotated[bool, typer.Option("--last", help="Show the last run's report.")] = False,
    limit: int = 10,
) -> None:
    """List recent runs, or show the last run's summary."""
    from rich.table import Table

    from concord.store import Store

    def body() -> None:
        store = Store.open(load_config(config).store_url)
        rows = store.last_runs(1 if last else limit)
        if last and rows:
            console.print(run_summary(rows[0]["report"] or {"run_id": rows[0]["run_id"]}))
            if rows[0]["report"].get("error"):
                console.print(f"[red]error:[/] {rows[0]['report']['error']}")
            return
        table = Table("run", "status", "trigger", "started", "finished")
        for r in rows:
            table.add_row(
                r["run_id"],
                r["status"],
                r["trigger"],
                f"{r['started_at']:%F %T}",
                f"{r['finished_at']:%F %T}" if r["finished_at"] else "-",
            )
        console.print(table)

    guarded(body)


@app.command()
def rejects(
    config: ConfigOpt = DEFAULT_CONFIG,
    run: Annotated[str | None, typer.Option(help="Only this run.")] = None,
    show_all: Annotated[bool, typer.Option("--all", help="Include resolved.")] = False,
    payload: Annotated[bool, typer.Option(help="Print each payload.")] = False,
    limit: int = 50,
) -> None:
    """Show rejected records with the reason and where (stage, source, field)."""
    from rich.table import Table

    from concord.store import Store

    def body() -> None:
        store = Store.open(load_config(config).store_url)
        rows = store.rejects(run_id=run, open_only=not show_all, limit=limit)
        table = Table(
            "stage",
            "source/entity",
            "id",
            "field",
            "reason",
            title=f"{len(rows)} rejects",
            title_justify="left",
        )
        for r in rows:
            table.add_row(
                r["stage"],
                f"{r['source']}/{r['entity']}",
                r["source_id"] or "-",
                r["field"] or "-",
                r["reason"],
            )
            if payload and r["payload"]:
                table.add_row("", "", "", "payload", r["payload"].decode("utf-8", "replace"))
        console.print(table)

    guarded(body)


@app.command()
def schema(
    entity: Annotated[str | None, typer.Argument(help="One model, e.g. Customer.")] = None,
) -> None:
    """Print the JSON Schema of the canonical model."""
    from pydantic.json_schema import models_json_schema

    from concord import model

    models: list[type[model.CanonicalModel]] = [*model.ENTITY_MODELS.values(), model.Customer360]
    if entity:
        models = [m for m in models if m.__name__.lower() == entity.lower()]
        if not models:
            err_console.print(f"[red]error:[/] unknown model {entity}")
            raise typer.Exit(1)
    _, doc = models_json_schema(
        [(m, "validation") for m in models], title="concord canonical model"
    )
    sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")


@customers_app.command("show")
def customers_show(
    query: Annotated[str, typer.Argument(help="concord id, source key or name")],
    config: ConfigOpt = DEFAULT_CONFIG,
) -> None:
    """Show a golden customer: its sources, the rule behind each link, and its 360 metrics."""
    from concord.lookup import find_customers, render_customer
    from concord.store import Store

    def body() -> None:
        store = Store.open(load_config(config).store_url)
        found = find_customers(store, query)
        if not found:
            err_console.print(f"[red]no customer matches[/] {query!r}")
            raise typer.Exit(1)
        if len(found) > 1:
            console.print(customers_table([f.data for f in found], title=f"{len(found)} matches"))
            return
        render_customer(console, found[0])

    guarded(body)


@customers_app.command("explain")
def customers_explain(
    a: Annotated[str, typer.Argument(help="record key source:id or concord id")],
    b: Annotated[str, typer.Argument(help="record key source:id or concord id")],
    config: ConfigOpt = DEFAULT_CONFIG,
) -> None:
    """Tell why two records are, or are not, the same customer."""
    from concord.explain import explain, render_explanation
    from concord.store import Store

    def body() -> None:
        cfg = load_config(config)
        render_explanation(console, explain(Store.open(cfg.store_url), cfg, a, b))

    guarded(body)


if __name__ == "__main__":
    app()
