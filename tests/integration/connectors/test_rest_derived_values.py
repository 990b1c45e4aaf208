"""Derived values an ERP changes without touching the record's timestamp arrive in the next run:
the tryton profile's revisit set (posted invoices are re-read on every run) and its trigger (a
new payment line re-reads the invoice it pays), against ``sandbox/tryton_rest.py``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from concord.config import load_config
from concord.pipeline import RunOptions, run_sync
from concord.store import Store
from concord.store import tables as t
from sandbox.tryton_rest import TrytonRestServer
from tests.integration.connectors.tryton_dialect import (
    CUSTOMERS,
    entity,
    write_tryton_config,
)

INVOICES = 8


def invoice(i: int, state: str = "posted") -> dict[str, Any]:
    total = Decimal(100 + i)
    return {
        "id": i,
        "number": f"INV-{i}",
        "type": "out",
        "party": 1,
        "invoice_date": "2026-11-01",
        "state": state,
        "currency": {"code": "EUR"},
        "total_amount": total,
        "amount_to_pay": total if state == "posted" else Decimal(0),
        "sales": [],
        "lines_to_pay": [],
    }


def payment_line(i: int, invoice_id: int, amount: str) -> dict[str, Any]:
    return {
        "id": i,
        "party": 1,
        "invoice_payment": invoice_id,
        "date": "2026-11-20",
        "amount": Decimal(amount),
        "amount_currency": {"code": "EUR"},
        "move": {"number": f"M{i}", "state": "posted", "journal": {"type": "cash", "name": "Cash"}},
        "account": {"type": {"receivable": True}},
    }


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[TrytonRestServer]:
    monkeypatch.setenv("FAKE_TRYTON_KEY", "tryton-key")
    with TrytonRestServer() as srv:
        srv.models = {"account.invoice": {}, "account.move.line": {}}
        base = datetime.now(UTC) - timedelta(days=2)
        for i in range(1, INVOICES + 1):
            srv.add("account.invoice", invoice(i), at=base + timedelta(minutes=i))
        srv.add("account.invoice", invoice(9, "paid"), at=base)
        yield srv


ENTITIES = {
    "invoices": entity("account.invoice", "invoice.yaml"),
    "payment_lines": entity("account.move.line", "payment_line.yaml", id_prefix="line-"),
}


def write_config(
    path: Path, server: TrytonRestServer, with_customers: bool = False, concurrency: int = 4
) -> Path:
    entities = {"customers": CUSTOMERS, **ENTITIES} if with_customers else ENTITIES
    written = write_tryton_config(path, server, entities, page_size=3)
    written.write_text(written.read_text() + f"extract_concurrency: {concurrency}\n")
    return written


def open_amounts(config: Path) -> dict[str, tuple[str, Decimal]]:
    store = Store(load_config(config).store_url)
    try:
        with store.engine.connect() as conn:
            inv = t.invoices
            rows = conn.execute(select(inv.c.source_id, inv.c.status, inv.c.open_amount)).all()
    finally:
        store.dispose()
    return {str(sid): (str(status), Decimal(amount)) for sid, status, amount in rows}


@pytest.mark.parametrize("concurrency", [1, 4])  # 4: the trigger runs after both windows
def test_quiet_changes_to_amount_to_pay_arrive_through_revisit_and_trigger(
    server: TrytonRestServer, tmp_path: Path, concurrency: int
) -> None:
    config = write_config(tmp_path / "concord.yaml", server, concurrency=concurrency)
    first = run_sync(load_config(config), RunOptions(trigger="test"))
    assert first["stages"]["extract"]["tryton/invoices"]["revisited"] == INVOICES
    assert open_amounts(config)["3"] == ("posted", Decimal(103))
    # A payment order settles part of invoice 3 elsewhere: only amount_to_pay changes.
    server.set_quietly("account.invoice", 3, amount_to_pay=Decimal("43.00"))
    # The Pay wizard pays invoice 7 in full: a new cash line, the invoice quietly paid (it has
    # left the revisit set of posted invoices, only the trigger re-reads it).
    server.add("account.move.line", payment_line(1, 7, "-107.00"))
    server.set_quietly("account.invoice", 7, state="paid", amount_to_pay=Decimal(0))
    second = run_sync(load_config(config), RunOptions(trigger="test"))
    invoices = second["stages"]["extract"]["tryton/invoices"]
    lines = second["stages"]["extract"]["tryton/payment_lines"]
    assert invoices["new"] + invoices["changed"] == 0  # no invoice timestamp moved
    assert invoices["revisited"] == INVOICES - 1 and invoices["revisit_changed"] == 1
    assert lines["new"] == 1
    assert lines["triggered"] == {"invoices": 1} and lines["trigger_changed"] == 1
    amounts = open_amounts(config)
    assert amounts["3"] == ("posted", Decimal("43.00"))
    assert amounts["7"] == ("paid", Decimal(0))
    expected = {
        str(r["id"]): Decimal(r["amount_to_pay"]) for r in server.records("account.invoice")
    }
    assert {sid: amount for sid, (_s, amount) in amounts.items()} == expected


def test_a_quiet_run_re_reads_the_revisit_set_and_changes_nothing(
    server: TrytonRestServer, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "concord.yaml", server)
    run_sync(load_config(config), RunOptions(trigger="test"))
    again = run_sync(load_config(config), RunOptions(trigger="test"))
    invoices = again["stages"]["extract"]["tryton/invoices"]
    assert invoices["revisited"] == INVOICES and invoices["revisit_changed"] == 0
    assert again["stages"]["map"]["tryton/invoices"]["records"] == 0


def party(pid: int, receivable: str) -> dict[str, Any]:
    return {
        "id": pid,
        "name": f"Party {pid} GmbH",
        "code": str(pid),
        "active": True,
        "identifiers": [],
        "email": "info@acme-trading.de",
        "phone": "",
        "addresses": [],
        "receivable": Decimal(receivable),
    }


def receivables(config: Path) -> dict[str, str]:
    store = Store(load_config(config).store_url)
    try:
        with store.engine.connect() as conn:
            c = t.customers
            rows = conn.execute(select(c.c.source_id, c.c.data)).all()
    finally:
        store.dispose()
    return {str(sid): str(data["erp_receivable"]) for sid, data in rows}


def test_a_payment_re_reads_the_partys_receivable_and_a_first_sync_reads_parties_once(
    server: TrytonRestServer, tmp_path: Path
) -> None:
    server.models.update({"party.party": {}, "company.company": {}})
    server.add("party.party", party(1, "836.00"), at=datetime.now(UTC) - timedelta(days=3))
    # A party edited later, so the next window starts past party 1.
    server.add("party.party", party(2, "0"), at=datetime.now(UTC) - timedelta(days=1))
    path = write_config(tmp_path / "concord.yaml", server, with_customers=True)
    first = run_sync(load_config(path), RunOptions(trigger="test"))
    # Every invoice is new, but the parties were pulled whole in this run: no second read.
    assert first["stages"]["extract"]["tryton/invoices"]["triggered"] == {}
    assert receivables(path) == {"1": "836.00", "2": "0"}
    # The Pay wizard pays invoice 7: a new cash line; Tryton's receivable of the party drops
    # without its last_modified_at moving.
    server.add("account.move.line", payment_line(1, 7, "-107.00"))
    server.set_quietly("account.invoice", 7, state="paid", amount_to_pay=Decimal(0))
    server.set_quietly("party.party", 1, receivable=Decimal("729.00"))
    second = run_sync(load_config(path), RunOptions(trigger="test"))
    customers = second["stages"]["extract"]["tryton/customers"]
    lines = second["stages"]["extract"]["tryton/payment_lines"]
    assert customers["new"] + customers["changed"] == 0  # the party's timestamp did not move
    assert lines["triggered"] == {"invoices": 1, "customers": 1}
    assert lines["trigger_changed"] == 2  # the invoice now paid, the party's receivable
    assert receivables(path) == {"1": "729.00", "2": "0"}
