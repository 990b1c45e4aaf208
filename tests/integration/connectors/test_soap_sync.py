"""A whole sync with the repo's concord.yaml: the REST ERP and the NAV-like SOAP ERP on loopback,
extracted, mapped and resolved into one customer base where shared customers merge."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from concord.config import load_config
from concord.pipeline import RunOptions, run_sync
from concord.store import Store
from concord.store import tables as t
from sandbox.erp_data import ErpDataset
from sandbox.nav_data import NavDataset
from sandbox.rest_erp import RestErpServer
from sandbox.soap_erp import DEFAULT_PASSWORD, DEFAULT_USER, SoapErpServer
from tests.repo_config import repo_config_data

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def erps(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[RestErpServer, SoapErpServer, NavDataset]]:
    nav_data = NavDataset.generate(seed=7, customers=60)
    with (
        RestErpServer(ErpDataset.generate(seed=7, customers=60), token="sandbox-erp-token") as rest,
        SoapErpServer(nav_data) as nav,
    ):
        monkeypatch.setenv("SANDBOX_ERP_TOKEN", "sandbox-erp-token")
        monkeypatch.setenv("SANDBOX_NAV_USER", DEFAULT_USER)
        monkeypatch.setenv("SANDBOX_NAV_PASSWORD", DEFAULT_PASSWORD)
        monkeypatch.setenv("CONCORD_SANDBOX_ERP_URL", rest.url)
        monkeypatch.setenv("CONCORD_SANDBOX_NAV_URL", nav.url)
        yield rest, nav, nav_data


def repo_config(folder: Path, store_url: str) -> Path:
    """The repo's concord.yaml with absolute mapping paths and the test store."""
    data = repo_config_data()
    data["store_url"] = store_url
    path = folder / "concord.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def links(store: Store) -> dict[tuple[str, str], str]:
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(
                t.identity_links.c.source,
                t.identity_links.c.source_id,
                t.identity_links.c.concord_id,
            )
        ).all()
    return {(source, sid): cid for source, sid, cid in rows}


def test_sync_with_the_soap_source_merges_customers_shared_by_both_erps(
    erps: tuple[RestErpServer, SoapErpServer, NavDataset], store_url: str, tmp_path: Path
) -> None:
    _, nav, nav_data = erps
    config = load_config(repo_config(tmp_path, store_url))
    report = run_sync(config, RunOptions(trigger="test", targets=[]))

    extract = report["stages"]["extract"]
    assert extract["sandbox_nav/customers"]["records"] == nav_data.count("Customer")
    assert extract["sandbox_nav/orders"]["records"] == nav_data.count("SalesOrder")
    payments = [r for r in nav_data.pages["CustLedgerEntry"] if r["Document_Type"] == "Payment"]
    assert extract["sandbox_nav/payments"]["records"] == len(payments)
    journal = nav_data.pages["CashReceiptJournal"]
    customer_lines = [r for r in journal if r["Account_Type"] == "Customer"]
    assert extract["sandbox_nav/cash_receipts"]["records"] == len(journal)
    assert extract["sandbox_nav/cash_receipts"]["excluded"] == {
        "not a customer line (G/L, bank, vendor, fixed asset, IC partner, employee)": len(journal)
        - len(customer_lines)
    }
    assert "sandbox_nav/shipments" not in extract  # staged by the orders' pull
    mapped = report["stages"]["map"]
    for entity in ("customers", "orders", "shipments", "payments", "cash_receipts"):
        assert mapped[f"sandbox_nav/{entity}"]["rejected"] == 0, entity
    assert mapped["sandbox_nav/shipments"]["mapped"] == nav_data.count("SalesOrder")
    assert mapped["sandbox_nav/cash_receipts"]["mapped"] == len(customer_lines)

    store = Store(store_url)
    with store.engine.connect() as conn:
        nav_rows = {
            table.name: {
                r.source_id: r
                for r in conn.execute(select(table).where(table.c.source == "sandbox_nav"))
            }
            for table in (t.orders, t.shipments, t.payments)
        }
    for page in nav_data.pages["SalesOrder"]:  # totals from the lines, shipped from any line
        lines = page["SalesLines"]["Sales_Order_Line"]
        order = nav_rows["orders"][page["No"]]
        assert order.gross_total == Decimal(lines[0]["Total_Amount_Incl_VAT"])
        shipped = any(Decimal(line["Quantity_Shipped"]) > 0 for line in lines)
        assert nav_rows["shipments"][page["No"]].status == ("shipped" if shipped else "pending")
    receipts = {s: r for s, r in nav_rows["payments"].items() if "/" in s}
    assert "CASHRCPT/GENERAL/10000" in receipts  # the composite key, readable
    assert {r.status for r in receipts.values()} == {"pending"} and len(receipts) == len(
        customer_lines
    )
    order_reads = [p for _m, p, op in nav.requests if op == "ReadMultiple" and "SalesOrder" in p]
    assert len(order_reads) == -(-nav_data.count("SalesOrder") // 200) + 1  # one pull, 2 entities
    linked = links(store)
    assert nav_data.shared
    for nav_no, rest_id in nav_data.shared.items():
        assert linked[("sandbox_nav", nav_no)] == linked[("sandbox_erp", rest_id)], nav_no
    nav_only = set(r["No"] for r in nav_data.pages["Customer"]) - set(nav_data.shared)
    rest_ids = {cid for (source, _), cid in linked.items() if source == "sandbox_erp"}
    assert all(linked[("sandbox_nav", no)] not in rest_ids for no in nav_only)
    calls_first_run = nav.count("ReadMultiple")

    # a second night pulls only what changed since the watermark (NAV filter on the date)
    again = run_sync(config, RunOptions(trigger="test", targets=[]))
    second = again["stages"]["extract"]["sandbox_nav/customers"]
    assert second["window_start"] is not None
    assert second["records"] < nav_data.count("Customer")
    assert second["new"] == 0 and second["changed"] == 0
    assert nav.count("ReadMultiple") > calls_first_run
