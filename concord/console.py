"""The one rich console every CLI command prints through, and the run summary renderings."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console(highlight=False)
if not console.is_terminal:
    console.width = max(console.width, 140)
err_console = Console(stderr=True, highlight=False)


def run_summary(report: dict[str, Any]) -> Table:
    """Records pulled/mapped/rejected per source entity and pushed per target."""
    stages = report.get("stages", {})
    table = Table(title=f"Run {report.get('run_id', '')}", title_justify="left")
    for col in (
        "source / entity",
        "pulled",
        "new",
        "changed",
        "mapped",
        "rejected",
        "schema drift",
    ):
        table.add_column(col, justify="left" if col.endswith(("entity", "fields")) else "right")
    scopes = list(dict.fromkeys([*stages.get("extract", {}), *stages.get("map", {})]))
    for scope in scopes:
        ex = stages.get("extract", {}).get(scope, {})
        mp = stages.get("map", {}).get(scope, {})
        drift = [f"+{k}" for k in sorted(mp.get("unmapped_fields") or {})] + [
            f"-{k}" for k in sorted(mp.get("missing_fields") or {})
        ]
        table.add_row(
            scope,
            str(ex.get("records", "-")),
            str(ex.get("new", "-")),
            str(ex.get("changed", "-")),
            str(mp.get("mapped", "-")),
            _warn(mp.get("rejected", 0)),
            ", ".join(sorted(drift))[:40] or "-",
        )
    for target, body in stages.get("push", {}).items():
        table.add_row(
            f"push → {target}",
            str(body.get("planned", 0)),
            "",
            "",
            f"{body.get('accepted', 0)} accepted",
            _warn(body.get("rejected", 0)),
            f"{body.get('unchanged', 0)} unchanged",
        )
    recon = stages.get("reconcile", {}).get("all", {})
    mismatches = recon.get("mismatches") or []
    if mismatches:
        table.caption = "[bold red]reconciliation mismatches:[/] " + "; ".join(mismatches[:5])
        table.caption_justify = "left"
    elif recon:
        table.caption = "reconciled: pulled = canonical + rejected, every customer pushed"
        table.caption_justify = "left"
    return table


def _drift(paths: list[str]) -> str:
    """'+field' appeared in the source unmapped, '-field' is mapped but absent."""
    if not paths:
        return "-"
    shown = ", ".join(paths[:4])
    return shown + (f" (+{len(paths) - 4} more)" if len(paths) > 4 else "")


def _warn(n: Any) -> str:
    return f"[bold red]{n}[/]" if isinstance(n, int) and n > 0 else str(n)


def money(value: Any, currency: str = "") -> str:
    return f"{Decimal(str(value)):,.2f} {currency}".strip()


def customers_table(rows: list[dict[str, Any]], title: str = "Customer 360") -> Table:
    table = Table(title=title, title_justify="left")
    for col in (
        "concord id",
        "name",
        "sources",
        "orders",
        "revenue",
        "open balance",
        "tier",
        "stage",
        "last order",
    ):
        table.add_column(
            col, justify="right" if col in ("orders", "revenue", "open balance") else "left"
        )
    for d in rows:
        cur = d.get("base_currency", "")
        table.add_row(
            d["concord_id"],
            str(d["name"]["value"]),
            "\n".join(d["source_ids"]),
            str(d["orders_count"]),
            money(d["lifetime_revenue"], cur),
            money(d["open_balance"], cur),
            d["value_tier"],
            d["lifecycle_stage"],
            (d.get("last_order_at") or "-")[:10],
        )
    return table
