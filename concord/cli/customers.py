"""``concord customers show|explain``: a golden customer whole, and why two records are one."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from concord.cli.command import DEFAULT_CONFIG, ConcordCommand, ConfigOpt, JsonOpt, group
from concord.cli.render import (
    console,
    customers_table,
    err_console,
    print_json,
    render_customer,
    render_explanation,
)
from concord.config import load_config
from concord.customer360.lookup import find_customers
from concord.identity.chart import waterfall_png
from concord.identity.explain import explain
from concord.store import Store

customers_app = group("Look up golden customers.")


@customers_app.command("show", cls=ConcordCommand)
def show(
    query: Annotated[str, typer.Argument(help="concord id (short form too), source:id or name")],
    config: ConfigOpt = DEFAULT_CONFIG,
    as_json: JsonOpt = False,
) -> None:
    """Show a golden customer: its sources, the rule behind each link, and its 360 metrics."""
    store = Store.open(load_config(config).store_url, create=False)
    found = find_customers(store, store.expand_concord_id(query))
    if as_json:
        print_json([dataclasses.asdict(f) for f in found])
        if not found:
            raise typer.Exit(1)
        return
    if not found:
        err_console.print(f"[red]no customer matches[/] {query!r}")
        raise typer.Exit(1)
    if len(found) > 1:
        console.print(customers_table([f.data for f in found], title=f"{len(found)} matches"))
        return
    render_customer(console, found[0])


@customers_app.command("explain", cls=ConcordCommand)
def explain_pair(
    a: Annotated[str, typer.Argument(help="record key source:id or concord id")],
    b: Annotated[str, typer.Argument(help="record key source:id or concord id")],
    config: ConfigOpt = DEFAULT_CONFIG,
    as_json: JsonOpt = False,
    chart: Annotated[
        Path | None, typer.Option("--chart", help="Write the match-weight waterfall (PNG).")
    ] = None,
) -> None:
    """Tell why two records are, or are not, the same customer (rules, weights, constraints)."""
    cfg = load_config(config)
    store = Store.open(cfg.store_url, create=False)
    found = explain(store, cfg, store.expand_concord_id(a), store.expand_concord_id(b))
    if chart is not None:
        if found.weights is None:
            err_console.print("[yellow]no chart: the model does not score this pair[/]")
        else:
            waterfall_png(found.weights, chart, f"{found.a_record} vs {found.b_record}")
    if as_json:
        print_json(dataclasses.asdict(found))
        return
    render_explanation(console, found)
    if chart is not None and found.weights is not None:
        console.print(f"chart written to {chart}")
