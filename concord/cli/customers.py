"""``concord customers show|explain``: a golden customer whole, and why two records are one."""

from __future__ import annotations

from typing import Annotated

import typer

from concord.cli.command import DEFAULT_CONFIG, ConfigOpt, group
from concord.cli.render import (
    console,
    customers_table,
    err_console,
    render_customer,
    render_explanation,
)
from concord.config import load_config
from concord.customer360.lookup import find_customers
from concord.identity.explain import explain
from concord.store import Store

customers_app = group("Look up golden customers.")


@customers_app.command("show")
def show(
    query: Annotated[str, typer.Argument(help="concord id, source key or name")],
    config: ConfigOpt = DEFAULT_CONFIG,
) -> None:
    """Show a golden customer: its sources, the rule behind each link, and its 360 metrics."""
    store = Store.open(load_config(config).store_url)
    found = find_customers(store, query)
    if not found:
        err_console.print(f"[red]no customer matches[/] {query!r}")
        raise typer.Exit(1)
    if len(found) > 1:
        console.print(customers_table([f.data for f in found], title=f"{len(found)} matches"))
        return
    render_customer(console, found[0])


@customers_app.command("explain")
def explain_pair(
    a: Annotated[str, typer.Argument(help="record key source:id or concord id")],
    b: Annotated[str, typer.Argument(help="record key source:id or concord id")],
    config: ConfigOpt = DEFAULT_CONFIG,
) -> None:
    """Tell why two records are, or are not, the same customer."""
    cfg = load_config(config)
    render_explanation(console, explain(Store.open(cfg.store_url), cfg, a, b))
