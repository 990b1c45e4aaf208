"""``concord demo``: the sandbox ERP and CRM on loopback ports, one full sync, the result shown."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import select

from concord.config import load_config
from concord.console import console, customers_table, run_summary
from concord.pipeline import RunOptions, run_sync
from concord.store import Store
from concord.store import tables as t
from sandbox.crm import CrmServer
from sandbox.erp_data import ErpDataset
from sandbox.rest_erp import RestErpServer

DEMO_ENV = {
    "SANDBOX_ERP_TOKEN": "sandbox-erp-token",
    "SANDBOX_CRM_TOKEN": "sandbox-crm-token",
}


def run_demo(config_path: Path, *, customers: int = 60) -> None:
    for key, value in DEMO_ENV.items():
        os.environ.setdefault(key, value)
    dataset = ErpDataset.generate(seed=7, customers=customers)
    with (
        RestErpServer(dataset, token=os.environ["SANDBOX_ERP_TOKEN"]) as erp,
        CrmServer(token=os.environ["SANDBOX_CRM_TOKEN"]) as crm,
    ):
        os.environ["CONCORD_SANDBOX_ERP_URL"] = erp.url
        os.environ["CONCORD_SANDBOX_CRM_URL"] = crm.url
        config = load_config(config_path)
        console.print(
            f"sandbox ERP at {erp.url}, sandbox CRM at {crm.url}, store "
            f"{Store(config.store_url).safe_url}"
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
        console.print(
            f"CRM received {sum(len(b['inputs']) for b in crm.batches)} upserts in "
            f"{len(crm.batches)} calls this run; try `concord customers show "
            f"{rows[0]['concord_id'] if rows else '<id>'}`"
        )
