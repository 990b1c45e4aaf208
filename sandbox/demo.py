"""``concord demo``: the sandbox ERPs (REST and NAV-like SOAP) and CRM on loopback ports, one full
sync with progress, the result shown — including customers found in both ERPs and resolved into
one. The CRM keeps its objects in `var/sandbox/crm.json`, so a second demo talks to the same CRM
and honestly pushes nothing; a CRM that lost what concord's push state says it holds is resynced
(read back, missing records sent). When `concord sandbox up` has the sandboxes running, the demo
syncs against those instead of starting its own."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from rich.table import Table
from sqlalchemy import func, select

from concord.cli.render import console, customers_table, progress_events, run_summary, short_id
from concord.config import PipelineConfig, load_config
from concord.customer360.stored import whole, whole_select
from concord.pipeline import RunOptions, run_sync
from concord.pipeline.context import open_context
from concord.pipeline.lifecycle import locked_run
from concord.pipeline.push import resync
from concord.store import Store
from concord.store import tables as t
from concord.store.store import check_store_url, sqlite_file
from sandbox import background
from sandbox.crm import CrmServer
from sandbox.erp_data import ErpDataset
from sandbox.nav_data import NavDataset
from sandbox.rest_erp import RestErpServer
from sandbox.soap_erp import SoapErpServer

DEMO_ENV = background.SECRETS
DEMO_TARGET = "sandbox_crm"


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
    table.add_column("concord id", no_wrap=True)
    table.add_column("name", overflow="fold", ratio=2)
    table.add_column("source records (rule)", overflow="fold", ratio=3)
    for row in rows:
        members = "\n".join(f"{s}:{sid} ({rule})" for s, sid, rule in row["members"])
        table.add_row(short_id(row["concord_id"]), row["name"] or "", members)
    return table


@contextmanager
def sandboxes(customers: int) -> Iterator[tuple[str, CrmServer | None]]:
    """The sandboxes' URLs in the environment: the background ones, or our own for the demo.

    Yields where they are, and the CRM when it is the demo's own (None for background ones).
    """
    for key, value in DEMO_ENV.items():
        os.environ.setdefault(key, value)
    up = background.running()
    if up:
        os.environ.update(background.environment(up))
        where = ", ".join(f"{r.name} {r.url}" for r in up)
        yield f"the sandboxes `concord sandbox up` started: {where}", None
        return
    background.STATE.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        erp = stack.enter_context(
            RestErpServer(
                ErpDataset.generate(seed=7, customers=customers),
                token=os.environ["SANDBOX_ERP_TOKEN"],
            )
        )
        nav = stack.enter_context(
            SoapErpServer(
                NavDataset.generate(seed=7, customers=customers),
                username=os.environ["SANDBOX_NAV_USER"],
                password=os.environ["SANDBOX_NAV_PASSWORD"],
            )
        )
        crm = stack.enter_context(
            CrmServer(token=os.environ["SANDBOX_CRM_TOKEN"], state_file=background.CRM_STATE)
        )
        os.environ["CONCORD_SANDBOX_ERP_URL"] = erp.url
        os.environ["CONCORD_SANDBOX_NAV_URL"] = nav.url
        os.environ["CONCORD_SANDBOX_CRM_URL"] = crm.url
        yield (
            f"sandbox REST ERP at {erp.url}, sandbox SOAP ERP (NAV-like) at {nav.url}, "
            f"sandbox CRM at {crm.url} (its objects kept in {background.CRM_STATE})",
            crm,
        )


def _prepare_store(config: PipelineConfig) -> Store:
    path = sqlite_file(check_store_url(config.store_url))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)  # the demo's own var/ folder
    return Store.open(config.store_url)


def _accepted(store: Store) -> int:
    ps = t.push_state
    with store.engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).where(ps.c.target == DEMO_TARGET, ps.c.status == "accepted")
            ).scalar_one()
        )


def resync_lost_records(config: PipelineConfig, store: Store) -> None:
    """The CRM holds fewer objects than the push state says (its state file was deleted):
    read its records back and send what it is missing, instead of trusting the push state."""
    options = RunOptions(trigger="demo-resync", targets=[DEMO_TARGET])
    ctx = open_context(config, options, store=store)

    def body() -> None:
        resync(ctx, DEMO_TARGET)

    console.print("the sandbox CRM lost records concord had pushed: resyncing it")
    with progress_events() as on_event:
        ctx.on_event = on_event
        report = locked_run(ctx, body)
    console.print(run_summary(report, status="succeeded", title="Resync of the sandbox CRM"))


def run_demo(config_path: Path, *, customers: int = 60) -> None:
    """Start the sandboxes (or use the running ones), sync once, show what happened."""
    with sandboxes(customers) as (where, crm):
        config = load_config(config_path)
        store = _prepare_store(config)
        console.print(f"{where}; store {store.safe_url}")
        held = sum(len(objects) for objects in crm.objects.values()) if crm else None
        if held is not None and DEMO_TARGET in config.targets and held < _accepted(store):
            resync_lost_records(config, store)
        with progress_events() as on_event:
            report = run_sync(config, RunOptions(trigger="demo"), on_event=on_event, store=store)
        console.print(run_summary(report, status="succeeded"))
        with store.engine.connect() as conn:
            day = t.customer360_daily
            rows = [
                whole(base, daily)
                for _gid, base, daily in conn.execute(
                    whole_select().order_by(day.c.value_tier, day.c.concord_id).limit(3)
                )
            ]
        console.print(customers_table(rows, title="Three customer-360 records"))
        merged, examples = cross_erp_customers(store)
        if merged:
            console.print(cross_erp_table(examples))
        console.print(f"{merged} customers appear in both ERPs and were resolved into one each")
        pushed = report["stages"].get("push", {}).get(DEMO_TARGET, {})
        console.print(
            f"The CRM accepted {pushed.get('accepted', 0)} customers in {pushed.get('calls', 0)} "
            "calls this run (only what changed is sent); try "
            f"`concord customers show {short_id(rows[0]['concord_id']) if rows else '<id>'}`"
        )
        store.dispose()
