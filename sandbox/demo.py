"""``concord demo``: the sandbox ERPs (REST and NAV-like SOAP) and CRM on loopback ports, one full
sync, the result shown — including customers found in both ERPs and resolved into one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rich.table import Table
from sqlalchemy import func, select

from concord.cli.render import console, customers_table, run_summary
from concord.config import load_config
from concord.pipeline import RunOptions, run_sync
from concord.store import Store
from concord.store import tables as t
from sandbox.crm import CrmServer
from sandbox.erp_data import ErpDataset
from sandbox.nav_data import NavDataset
from sandbox.rest_erp import RestErpServer
from sandbox.soap_erp import DEFAULT_PASSWORD, DEFAULT_USER, SoapErpServer

DEMO_ENV = {
    "SANDBOX_ERP_TOKEN": "sandbox-erp-token",
    "SANDBOX_CRM_TOKEN": "sandbox-crm-token",
    "SANDBOX_NAV_USER": DEFAULT_USER,
    "SANDBOX_NAV_PASSWORD": DEFAULT_PASSWORD,
}


def cross_erp_customers(store: Store, limit: int = 5) -> tuple[int, list[dict[str, Any]]]:
    """How many golden customers hold records from more than one source, and a few of them
    with their source ids (what identity resolution merged across ERPs)."""
    links = t.identity_links
    multi = (
        select(links.c.concord_id)
        .group_by(links.c.concord_id)
        .having(func.count(func.distinct(links.c.source)) > 1)
    )
    with store.engine.connect() as conn:
        ids = list(conn.execute(multi.order_by(links.c.concord_id)).scalars())
        rows: list[dict[str, Any]] = []
        for concord_id in ids[:limit]:
            members = conn.execute(
                select(links.c.source, links.c.source_id, links.c.rule)
                .where(links.c.concord_id == concord_id)
                .order_by(links.c.source, links.c.source_id)
            ).all()
            name = conn.execute(
                select(t.customer360.c.name).where(t.customer360.c.concord_id == concord_id)
            ).scalar()
            rows.append({"concord_id": concord_id, "name": name, "members": members})
    return len(ids), rows


def cross_erp_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="Customers found in both ERPs, resolved into one", title_justify="left")
    for col in ("concord id", "name", "source records (rule)"):
        table.add_column(col)
    for row in rows:
        members = ", ".join(f"{s}:{sid} ({rule})" for s, sid, rule in row["members"])
        table.add_row(row["concord_id"], row["name"] or "", members)
    return table


def run_demo(config_path: Path, *, customers: int = 60) -> None:
    """Start the sandboxes, sync once into the config's store, print what happened."""
    for key, value in DEMO_ENV.items():
        os.environ.setdefault(key, value)
    dataset = ErpDataset.generate(seed=7, customers=customers)
    nav_dataset = NavDataset.generate(seed=7, customers=customers)
    with (
        RestErpServer(dataset, token=os.environ["SANDBOX_ERP_TOKEN"]) as erp,
        SoapErpServer(
            nav_dataset,
            username=os.environ["SANDBOX_NAV_USER"],
            password=os.environ["SANDBOX_NAV_PASSWORD"],
        ) as nav,
        CrmServer(token=os.environ["SANDBOX_CRM_TOKEN"]) as crm,
    ):
        os.environ["CONCORD_SANDBOX_ERP_URL"] = erp.url
        os.environ["CONCORD_SANDBOX_NAV_URL"] = nav.url
        os.environ["CONCORD_SANDBOX_CRM_URL"] = crm.url
        config = load_config(config_path)
        console.print(
            f"sandbox REST ERP at {erp.url}, sandbox SOAP ERP (NAV-like) at {nav.url}, "
            f"sandbox CRM at {crm.url}, store {Store(config.store_url).safe_url}"
        )
        report = run_sync(config, RunOptions(trigger="demo"))
        console.print(run_summary(report))
        store = Store(config.store_url)
        with store.engine.connect() as conn:
            rows = list(
                conn.execute(
                    select(t.customer360.c.data)
                    .order_by(t.customer360.c.value_tier, t.customer360.c.concord_id)
                    .limit(3)
                ).scalars()
            )
        console.print(customers_table(rows, title="Three customer-360 records"))
        merged, examples = cross_erp_customers(store)
        if merged:
            console.print(cross_erp_table(examples))
        console.print(f"{merged} customers appear in both ERPs and were resolved into one each")
        console.print(
            f"CRM received {sum(len(b['inputs']) for b in crm.batches)} upserts in "
            f"{len(crm.batches)} calls this run; try `concord customers show "
            f"{rows[0]['concord_id'] if rows else '<id>'}`"
        )
