"""concord's REST source against a real Tryton 8.2 server: a full sync, then an incremental one.

The server, its modules and the seeded database come from ``conftest.py``; the sync is the real
pipeline (``run_sync``) with the ``tryton`` profile and the mappings in ``mappings/tryton``, no
targets. Counts and money totals are compared with what Tryton itself computes.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select

from concord.config import load_config
from concord.pipeline import RunOptions, run_sync
from concord.store import Store
from concord.store import tables as t
from tests.integration.tryton.conftest import REPO, TrytonServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

ENTITIES = {
    "customers": ("party.party", "party.yaml"),
    "orders": ("sale.sale", "sale.yaml"),
    "shipments": ("stock.shipment.out", "shipment.yaml"),
    "invoices": ("account.invoice", "invoice.yaml"),
    "payments": ("account.payment", "payment.yaml"),
}


def write_config(path: Path, server: TrytonServer, store_url: str) -> Path:
    config = {
        "store_url": store_url,
        "base_currency": "EUR",
        "sources": {
            "tryton": {
                "type": "rest",
                "profile": "tryton",
                "base_url": server.url,
                "auth": {"token": {"env": "CONCORD_TEST_TRYTON_KEY"}},
                "page_size": 7,  # several pages per entity
                "entities": {
                    name: {
                        "resource": resource,
                        "mapping": str(REPO / "mappings" / "tryton" / mapping),
                        "cursor_field": "last_modified_at",
                    }
                    for name, (resource, mapping) in ENTITIES.items()
                },
            }
        },
        "targets": {},
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def synced(
    tryton_server: TrytonServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """A first full sync of the seeded Tryton database into a fresh SQLite store."""
    work = tmp_path_factory.mktemp("concord")
    store_url = f"sqlite:///{work / 'concord.db'}"
    mp = pytest.MonkeyPatch()
    mp.setenv("CONCORD_TEST_TRYTON_KEY", tryton_server.key)
    config_path = write_config(work / "concord.yaml", tryton_server, store_url)
    try:
        report = run_sync(load_config(config_path), RunOptions(trigger="test"))
        yield {
            "config": config_path,
            "store_url": store_url,
            "report": report,
            "tryton": tryton_server.script("totals"),
        }
    finally:
        mp.undo()


def table_totals(store_url: str) -> dict[str, Any]:
    store = Store(store_url)
    try:
        with store.engine.connect() as conn:

            def count(table: Any, *where: Any) -> int:
                return int(
                    conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()
                )

            def money(column: Any) -> Decimal:
                values = conn.execute(select(column)).scalars()
                return sum((Decimal(v) for v in values), Decimal(0))

            return {
                "parties": count(t.customers),
                "sales": count(t.orders),
                "sales_total": money(t.orders.c.gross_total),
                "invoices": count(t.invoices),
                "invoices_total": money(t.invoices.c.total),
                "invoices_open": money(t.invoices.c.open_amount),
                "shipments": count(t.shipments),
                "shipments_done": count(t.shipments, t.shipments.c.status == "delivered"),
                "payments": count(t.payments),
                "payments_total": money(t.payments.c.amount),
            }
    finally:
        store.dispose()


def test_full_sync_matches_trytons_counts_and_money_totals(synced: dict[str, Any]) -> None:
    tryton = synced["tryton"]
    ours = table_totals(synced["store_url"])
    for key, value in tryton.items():
        expected = Decimal(value) if isinstance(value, str) else value
        assert ours[key] == expected, f"{key}: concord {ours[key]} vs Tryton {expected}"
    assert tryton["sales"] >= 10 and Decimal(tryton["payments_total"]) > 0


def test_full_sync_has_no_rejects_and_pages_through_range_headers(
    synced: dict[str, Any],
) -> None:
    stages = synced["report"]["stages"]
    for name in ENTITIES:
        assert stages["map"][f"tryton/{name}"]["rejected"] == 0, name
    assert stages["extract"]["tryton/orders"]["pages"] >= 3  # 16 sales, 7 a page


def test_near_duplicate_customers_resolve_to_one_golden_customer(synced: dict[str, Any]) -> None:
    store = Store(synced["store_url"])
    try:
        with store.engine.connect() as conn:
            links = t.identity_links
            golden_of = dict(conn.execute(select(links.c.source_id, links.c.concord_id)).all())
    finally:
        store.dispose()
    assert golden_of["2"] == golden_of["3"]  # the two "Acme Trading GmbH" share a VAT id


def test_incremental_run_pulls_exactly_the_changed_records(
    synced: dict[str, Any], tryton_server: TrytonServer
) -> None:
    change = tryton_server.script("change")
    mp = pytest.MonkeyPatch()
    mp.setenv("CONCORD_TEST_TRYTON_KEY", tryton_server.key)
    try:
        report = run_sync(load_config(synced["config"]), RunOptions(trigger="test"))
    finally:
        mp.undo()
    extract = report["stages"]["extract"]
    customers = extract["tryton/customers"]
    assert (customers["new"], customers["changed"]) == (len(change["new"]), len(change["changed"]))
    for name in ENTITIES:
        if name != "customers":
            assert extract[f"tryton/{name}"]["new"] + extract[f"tryton/{name}"]["changed"] == 0
    store = Store(synced["store_url"])
    try:
        with store.engine.connect() as conn:
            c = t.customers
            names = dict(conn.execute(select(c.c.source_id, c.c.name)).all())
    finally:
        store.dispose()
    assert all(names[i].endswith("(renamed)") for i in change["changed"])
    assert names[change["new"][0]] == "Juliett Logistics GmbH"
