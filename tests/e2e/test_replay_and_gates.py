"""The engineer's loop: a changed mapping reaches staged records, a record that turns bad is
quarantined and reconciled by that rule, and the gates stop a broken entity before any CRM call."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from concord.config import load_config
from concord.errors import RunFailed
from concord.pipeline import RunOptions, run_sync
from concord.store import Store
from concord.store import tables as t
from sandbox.crm import CrmServer
from sandbox.erp_data import ErpDataset
from sandbox.rest_erp import RestErpServer
from tests.e2e.conftest import REPO, write_config


def sync(cfg: Path) -> dict[str, Any]:
    return dict(run_sync(load_config(cfg), RunOptions()))


def rows(store: Store, table: Any, **where: str) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        stmt = select(table)
        for col, value in where.items():
            stmt = stmt.where(table.c[col] == value)
        return [dict(r) for r in conn.execute(stmt).mappings()]


def open_rejects(store: Store, source_id: str) -> list[dict[str, Any]]:
    return [r for r in store.rejects(limit=1000) if r["source_id"] == source_id]


@pytest.fixture
def own_mapping(tmp_path: Path) -> Path:
    """A copy of the sandbox customers mapping the test may edit."""
    path = tmp_path / "customers.yaml"
    shutil.copy(REPO / "mappings" / "sandbox_erp" / "customers.yaml", path)
    return path


def config_with(tmp_path: Path, store_url: str, erp: str, crm: str, mapping: Path) -> Path:
    cfg = write_config(tmp_path / "c.yaml", store_url=store_url, erp_url=erp, crm_url=crm)
    default = str(REPO / "mappings" / "sandbox_erp" / "customers.yaml")
    cfg.write_text(cfg.read_text().replace(default, str(mapping)))
    return cfg


def test_a_fixed_mapping_reaches_staged_records_and_picks_up_their_rejects(
    tmp_path: Path,
    store_url: str,
    dataset: ErpDataset,
    erp: RestErpServer,
    crm: CrmServer,
    own_mapping: Path,
) -> None:
    cfg = config_with(tmp_path, store_url, erp.url, crm.url, own_mapping)
    sync(cfg)
    store = Store(store_url)
    _, no_key = (sid for _, sid in dataset.messy["missing_company"])
    assert open_rejects(store, no_key)
    quiet = sync(cfg)["stages"]["map"]["sandbox_erp/customers"]
    assert quiet["replayed"] == 0 and quiet["records"] == 0

    text = own_mapping.read_text().replace(
        "  name: company ", "  name: {coalesce: [company, legal_name]} "
    )
    own_mapping.write_text(text)
    report = sync(cfg)["stages"]["map"]["sandbox_erp/customers"]

    staged = dataset.count("customers")
    assert report["replayed"] == staged and report["records"] == staged
    assert not open_rejects(store, no_key)
    [row] = rows(store, t.customers, source="sandbox_erp", source_id=no_key)
    assert row["name"] == dataset.get("customers", no_key)["legal_name"]  # type: ignore[index]
    assert row["mapping_fp"] == report["mapping_fp"]
    assert sync(cfg)["stages"]["map"]["sandbox_erp/customers"]["replayed"] == 0


def test_a_record_that_turns_bad_is_quarantined_and_the_store_still_reconciles(
    tmp_path: Path, store_url: str, dataset: ErpDataset, erp: RestErpServer, crm: CrmServer
) -> None:
    cfg = write_config(tmp_path / "c.yaml", store_url=store_url, erp_url=erp.url, crm_url=crm.url)
    sync(cfg)
    store = Store(store_url)
    good = dict(rows(store, t.customers, source="sandbox_erp", source_id="C-00010")[0])
    dataset.update("customers", "C-00010", company="", legal_name="")

    report = sync(cfg)
    assert report["stages"]["map"]["sandbox_erp/customers"]["quarantined"] == 1
    assert not rows(store, t.customers, source="sandbox_erp", source_id="C-00010")
    [kept] = rows(store, t.quarantine, source="sandbox_erp", source_id="C-00010")
    assert kept["data"] == good["data"] and kept["canonical_entity"] == "customers"
    assert open_rejects(store, "C-00010")
    recon = report["stages"]["reconcile"]["all"]
    assert recon["mismatches"] == [] and recon["ok"]
    # Left out of the 360 and the push: no golden customer lists the bad record any more.
    with store.engine.connect() as conn:
        listed = [
            d
            for d in conn.execute(select(t.customer360.c.data)).scalars()
            if "sandbox_erp:C-00010" in d["source_ids"]
        ]
    assert listed == []

    dataset.update("customers", "C-00010", company=good["name"])
    again = sync(cfg)
    assert rows(store, t.customers, source="sandbox_erp", source_id="C-00010")
    assert not rows(store, t.quarantine, source="sandbox_erp", source_id="C-00010")
    assert not open_rejects(store, "C-00010")
    assert again["stages"]["reconcile"]["all"]["ok"]


def test_three_bad_changes_on_a_quiet_night_pass_the_gate_over_the_entity(
    tmp_path: Path, sqlite_url: str, dataset: ErpDataset, erp: RestErpServer, crm: CrmServer
) -> None:
    cfg = write_config(
        tmp_path / "c.yaml",
        store_url=sqlite_url,
        erp_url=erp.url,
        crm_url=crm.url,
        reject_ratio=0.2,
        reject_min_count=1,
    )
    sync(cfg)
    for sid in ("C-00011", "C-00012", "C-00013"):
        dataset.update("customers", sid, company="")
    report = sync(cfg)  # 3 of 3 changed records are bad (100%), 5 of 40 in the entity
    gate = report["stages"]["gate"]["all"]
    row = next(e for e in gate["entities"] if e["scope"] == "sandbox_erp/customers")
    assert row["rejected"] == 5 and row["staged"] == 40
    assert row["maps"] is True  # probed, not counted: reconcile counts the canonical rows
    assert gate["failures"] == []


def test_records_without_an_id_count_as_rejects_and_fail_the_run(
    tmp_path: Path, sqlite_url: str, dataset: ErpDataset, erp: RestErpServer, crm: CrmServer
) -> None:
    cfg = write_config(tmp_path / "c.yaml", store_url=sqlite_url, erp_url=erp.url, crm_url=crm.url)
    text = cfg.read_text().replace(
        "customers: {path: /api/v1/customers,", "customers: {path: /api/v1/customers, id_field: nr,"
    )
    cfg.write_text(text)
    with pytest.raises(RunFailed, match="sandbox_erp/customers: 40 of 40 records rejected"):
        sync(cfg)
    store = Store(sqlite_url)
    with store.engine.connect() as conn:
        dropped = conn.execute(
            select(func.count()).where(t.rejects.c.stage == "extract")
        ).scalar_one()
    assert dropped == dataset.count("customers")
    assert crm.batches == []
