"""``exclude`` on an entity: the records it names are left out of staging, counted by reason."""

from __future__ import annotations

from pathlib import Path

import yaml
from sqlalchemy import select

from concord.config import load_config
from concord.pipeline import RunOptions, run_sync
from concord.store import Store
from concord.store import tables as t
from sandbox.crm import CrmServer
from sandbox.erp_data import ErpDataset
from sandbox.rest_erp import RestErpServer
from tests.e2e.conftest import write_config
from tests.e2e.test_nightly_sync import UNTIL


def staged_customers(store_url: str) -> set[str]:
    store = Store(store_url)
    try:
        with store.engine.connect() as conn:
            return {
                *conn.execute(
                    select(t.raw_records.c.source_id).where(t.raw_records.c.entity == "customers")
                ).scalars(),
                *conn.execute(select(t.customers.c.source_id)).scalars(),
            }
    finally:
        store.dispose()


def test_excluded_records_are_left_out_and_removed_when_already_pulled(
    tmp_path: Path, store_url: str, dataset: ErpDataset, erp: RestErpServer, crm: CrmServer
) -> None:
    path = write_config(tmp_path / "c.yaml", store_url=store_url, erp_url=erp.url, crm_url=crm.url)
    first = run_sync(load_config(path), RunOptions(window_end=UNTIL))
    own = sorted(staged_customers(store_url))[:2]
    assert first["stages"]["extract"]["sandbox_erp/customers"]["excluded"] == {}
    doc = yaml.safe_load(path.read_text())
    doc["sources"]["sandbox_erp"]["entities"]["customers"]["exclude"] = [
        {"path": "id", "values": own, "reason": "our own company"}
    ]
    path.write_text(yaml.safe_dump(doc))
    again = run_sync(load_config(path), RunOptions(window_end=UNTIL, full_refresh=True))
    extract = again["stages"]["extract"]["sandbox_erp/customers"]
    assert extract["excluded"] == {"our own company": 2}
    assert not set(own) & staged_customers(store_url)
    assert not again["stages"]["reconcile"]["all"]["mismatches"]
    assert dataset.count("customers") - 2 == len(staged_customers(store_url))
