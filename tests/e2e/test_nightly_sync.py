"""The whole nightly sync against the sandbox ERP and CRM, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

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
from tests.e2e.conftest import write_config

UNTIL = datetime(2026, 11, 2, tzinfo=UTC)


def count(store: Store, table: t.Table) -> int:  # type: ignore[name-defined]
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def sync(cfg: Path, **kw: object) -> dict:  # type: ignore[type-arg]
    return run_sync(load_config(cfg), RunOptions(window_end=UNTIL, **kw))  # type: ignore[arg-type]


def test_full_sync_maps_resolves_and_pushes(
    tmp_path: Path, store_url: str, dataset: ErpDataset, erp: RestErpServer, crm: CrmServer
) -> None:
    cfg = write_config(tmp_path / "c.yaml", store_url=store_url, erp_url=erp.url, crm_url=crm.url)
    report = sync(cfg)
    store = Store(store_url)
    extract = report["stages"]["extract"]
    assert extract["sandbox_erp/orders"]["records"] == dataset.count("orders")
    mapped = report["stages"]["map"]
    bad_customers = len(dataset.messy["missing_company"])
    assert mapped["sandbox_erp/customers"]["rejected"] == bad_customers
    assert count(store, t.customers) == dataset.count("customers") - bad_customers
    rejects = store.rejects(limit=1000)
    assert all(r["payload"] and r["reason"] for r in rejects)
    assert {r["source_id"] for r in rejects if r["entity"] == "orders"} >= {
        i for e, i in dataset.messy["bad_order_date"]
    }
    golden = count(store, t.customer360)
    duplicates = len(dataset.duplicate_of)
    assert golden <= count(store, t.customers) - duplicates + 1
    assert (
        len(crm.objects["companies"])
        == golden
        == report["stages"]["push"]["sandbox_crm"]["accepted"]
    )
    assert not report["stages"]["reconcile"]["all"]["mismatches"]


def test_second_run_pushes_nothing_new(
    tmp_path: Path, sqlite_url: str, erp: RestErpServer, crm: CrmServer
) -> None:
    cfg = write_config(tmp_path / "c.yaml", store_url=sqlite_url, erp_url=erp.url, crm_url=crm.url)
    sync(cfg)
    calls = len(crm.batches)
    second = sync(cfg)
    assert len(crm.batches) == calls
    push = second["stages"]["push"]["sandbox_crm"]
    assert push["planned"] == 0 and push["unchanged"] == len(crm.objects["companies"])
    assert all(m["mapped"] == 0 for m in second["stages"]["map"].values())
    built = second["stages"]["build_360"]["all"]  # the first run's rows are not read again
    assert (built["full_reason"], built["recomputed_changed"]) == ("", 0), built


def test_changed_order_flows_to_the_crm_in_the_next_incremental_run(
    tmp_path: Path, sqlite_url: str, dataset: ErpDataset, erp: RestErpServer, crm: CrmServer
) -> None:
    cfg = write_config(tmp_path / "c.yaml", store_url=sqlite_url, erp_url=erp.url, crm_url=crm.url)
    sync(cfg)
    order = next(
        o
        for o in dataset.iter_all("orders")
        if o["state"] == "confirmed"
        and o["customer_id"] in {c["id"] for c in dataset.iter_all("customers") if c.get("company")}
    )
    dataset.update(
        "orders",
        order["id"],
        amount_total="99999.00",
        at=datetime(2026, 11, 1, 12, tzinfo=UTC),
    )
    second = sync(cfg)
    assert second["stages"]["extract"]["sandbox_erp/orders"]["changed"] == 1
    assert second["stages"]["map"]["sandbox_erp/orders"]["mapped"] == 1
    built = second["stages"]["build_360"]["all"]
    assert built["full_reason"] == "" and 1 <= built["recomputed_changed"] <= 3, built
    sent = {i["id"]: i["properties"] for i in crm.batches[-1]["inputs"]}
    store = Store(sqlite_url)
    with store.engine.connect() as conn:
        gid = conn.execute(
            select(t.identity_links.c.concord_id).where(
                t.identity_links.c.source_id == order["customer_id"]
            )
        ).scalar_one()
    assert gid in sent
    assert float(sent[gid]["lifetime_revenue"]) > 99999 * 0.9  # converted to EUR at most -8%
    # Only the customer and those whose relative value tier moved are re-sent.
    assert second["stages"]["push"]["sandbox_crm"]["accepted"] == len(sent)
    assert len(sent) < len(crm.objects["companies"])


def test_reject_ratio_fails_the_run_at_the_gate_but_keeps_the_work(
    tmp_path: Path, sqlite_url: str, erp: RestErpServer, crm: CrmServer
) -> None:
    cfg = write_config(
        tmp_path / "c.yaml",
        store_url=sqlite_url,
        erp_url=erp.url,
        crm_url=crm.url,
        reject_ratio=0.0001,
        reject_min_count=1,
    )
    with pytest.raises(RunFailed, match=r"gates before the push failed.*above reject_ratio"):
        sync(cfg)
    assert crm.requests == []  # decided before any CRM call
    store = Store(sqlite_url)
    last = store.last_runs(1)[0]
    assert last["status"] == "failed" and "reject_ratio" in last["report"]["error"]
    assert "sandbox_erp/customers: 2 of 40 records rejected" in last["report"]["error"]
    assert "push" not in last["report"]["stages"]
    assert count(store, t.orders) > 0


def test_unreachable_source_fails_without_advancing_the_watermark(
    tmp_path: Path, sqlite_url: str, crm: CrmServer
) -> None:
    cfg = write_config(
        tmp_path / "c.yaml", store_url=sqlite_url, erp_url="http://127.0.0.1:9", crm_url=crm.url
    )
    cfg.write_text(
        cfg.read_text().replace("backoff_base: 0.01", "backoff_base: 0.01, max_attempts: 2")
    )
    with pytest.raises(RunFailed, match="extract sandbox_erp/customers"):
        sync(cfg)
    store = Store(sqlite_url)
    assert store.watermark("sandbox_erp", "customers").cursor is None
    report = store.last_runs(1)[0]["report"]
    assert "connection failed" in report["stages"]["extract"]["sandbox_erp/customers"]["error"]
    # Down through its retries: the source's other entities are not asked again.
    assert "not pulled" in report["stages"]["extract"]["sandbox_erp/orders"]["error"]


def test_schema_drift_is_reported_in_the_run(
    tmp_path: Path, sqlite_url: str, dataset: ErpDataset, erp: RestErpServer, crm: CrmServer
) -> None:
    cfg = write_config(tmp_path / "c.yaml", store_url=sqlite_url, erp_url=erp.url, crm_url=crm.url)
    sync(cfg)
    customer = dataset.get("customers", "C-00010")
    assert customer is not None
    changed = {k: v for k, v in customer.items() if k != "phone"}
    changed["fax"] = "+49 30 999"
    dataset._table("customers").remove("C-00010")  # the sandbox has no key-removing update
    dataset.add("customers", {**changed, "updated_at": "2026-11-01T12:00:00Z"})
    report = sync(cfg)["stages"]["map"]["sandbox_erp/customers"]
    assert report["unmapped_fields"] == {"fax": 1}
    assert report["missing_fields"] == {"phone": 1}


def test_payload_that_is_not_an_object_is_rejected_not_lost(
    tmp_path: Path, sqlite_url: str, erp: RestErpServer, crm: CrmServer
) -> None:
    from concord.store import StagedRow

    cfg = write_config(
        tmp_path / "c.yaml",
        store_url=sqlite_url,
        erp_url=erp.url,
        crm_url=crm.url,
        reject_ratio=1.0,
    )
    sync(cfg)
    store = Store(sqlite_url)
    with store.begin() as conn:
        store.stage(
            conn, "sandbox_erp", "orders", [StagedRow("X-1", b"[1, 2]", "h", None)], "manual"
        )
    sync(cfg)
    rejects = [r for r in store.rejects(limit=500) if r["source_id"] == "X-1"]
    assert rejects and rejects[0]["reason"] == "payload is not a JSON object"
    assert rejects[0]["payload"] == b"[1, 2]"
