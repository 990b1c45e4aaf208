"""Finding a golden customer by concord id, source key or name, and showing it whole.

``find_customers`` follows merged ids to their survivor, so an id the CRM still holds from before a
merge keeps working. ``render_customer`` prints the golden record (each value with the source
record that supplied it), every linked source record with the rule, score and record behind its
link, and the 360 metrics (revenue, balances, RFM, tier, lifecycle and churn risk).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import Connection, func, or_, select

from concord.console import money
from concord.store import Store
from concord.store import tables as t


@dataclass
class CustomerView:
    concord_id: str
    data: dict[str, Any]
    links: list[dict[str, Any]] = field(default_factory=list)
    asked_for: str | None = None  # the merged id the query named, if it was one


def _survivor(conn: Connection, gid: str) -> str:
    g = t.golden
    seen: set[str] = set()
    while gid not in seen:
        seen.add(gid)
        into = conn.execute(
            select(g.c.merged_into).where(g.c.concord_id == gid, g.c.status == "merged")
        ).scalar()
        if not into:
            return gid
        gid = into
    return gid


def find_customers(store: Store, query: str, limit: int = 20) -> list[CustomerView]:
    """Exact concord id, then 'source:id' of a linked record, then a name substring."""
    c360, il = t.customer360, t.identity_links
    with store.engine.connect() as conn:
        asked: str | None = None
        survivor = _survivor(conn, query)
        if survivor != query:
            asked = query
        ids = list(
            conn.execute(select(c360.c.concord_id).where(c360.c.concord_id == survivor)).scalars()
        )
        if not ids and ":" in query:
            source, _, sid = query.partition(":")
            ids = list(
                conn.execute(
                    select(il.c.concord_id).where(il.c.source == source, il.c.source_id == sid)
                ).scalars()
            )
        if not ids:
            ids = list(
                conn.execute(
                    select(c360.c.concord_id)
                    .where(func.lower(c360.c.name).contains(query.lower()))
                    .order_by(c360.c.name)
                    .limit(limit)
                ).scalars()
            )
        views = []
        for gid in ids:
            data = conn.execute(select(c360.c.data).where(c360.c.concord_id == gid)).scalar()
            if data is None:
                continue
            links = [
                dict(r)
                for r in conn.execute(
                    select(il)
                    .where(or_(il.c.concord_id == gid))
                    .order_by(il.c.source, il.c.source_id)
                ).mappings()
            ]
            views.append(CustomerView(gid, data, links, asked))
    return views


def render_customer(console: Console, view: CustomerView) -> None:
    """Golden record with sources per value, links with their rules, then the 360 metrics."""
    d = view.data
    cur = d.get("base_currency", "")
    if view.asked_for:
        console.print(f"[yellow]{view.asked_for} was merged into {view.concord_id}[/]")
    console.print(
        f"[bold]{d['name']['value']}[/]  {view.concord_id}  tier {d['value_tier']}, "
        f"{d['lifecycle_stage']}"
    )
    golden = Table("field", "value", "from", title="Golden record", title_justify="left")
    for fname in ("name", "email", "phone", "address", "tax_id"):
        sv = d.get(fname)
        if sv:
            value = sv["value"]
            if isinstance(value, dict):
                value = ", ".join(str(v) for v in value.values() if v)
            golden.add_row(fname, str(value), sv["source"])
    console.print(golden)
    links = Table(
        "source record", "linked by", "score", "matched to", title="Sources", title_justify="left"
    )
    for link in view.links:
        links.add_row(
            f"{link['source']}:{link['source_id']}",
            link["rule"],
            f"{link['score']:.2f}",
            link["matched_to"] or "-",
        )
    console.print(links)
    metrics = Table("metric", "value", title="360 metrics", title_justify="left")
    for key in (
        "orders_count",
        "lifetime_revenue",
        "revenue_12m",
        "average_order_value",
        "first_order_at",
        "last_order_at",
        "days_since_last_order",
        "open_orders",
        "shipments_in_transit",
        "shipments_late_90d",
        "invoiced_total",
        "paid_total",
        "open_balance",
        "overdue_balance",
        "average_days_to_pay",
        "rfm_recency",
        "rfm_frequency",
        "rfm_monetary",
        "value_tier",
        "lifecycle_stage",
        "p_alive",
        "churn_risk",
    ):
        value = d.get(key)
        if (
            key
            in (
                "lifetime_revenue",
                "revenue_12m",
                "average_order_value",
                "invoiced_total",
                "paid_total",
                "open_balance",
                "overdue_balance",
            )
            and value is not None
        ):
            value = money(value, cur)
        metrics.add_row(key, "-" if value is None else str(value))
    console.print(metrics)
