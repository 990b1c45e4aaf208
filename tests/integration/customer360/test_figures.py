"""Customer-360 figures finance signs off, on hand-built canonical rows in a real store.

Business dates, allocations (paid + open = invoiced or the reason why not), dated exchange rates
(each document at its own date, missing rates reported), the check against the ERP's own
receivable and the push gate, records of a source without invoices, customer numbers and
survivorship that keeps the original record.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from concord.cli.render import render_customer
from concord.config import PipelineConfig
from concord.customer360.lookup import find_customers
from concord.customer360.receivable import gate
from concord.customer360.stored import whole_rows
from concord.model import (
    CanonicalModel,
    Customer,
    ExchangeRate,
    Invoice,
    Order,
    Payment,
    SourceRef,
)
from concord.pipeline.build_360 import build
from concord.pipeline.map import canonical_row
from concord.pipeline.resolve import resolve_identities
from concord.store import Store
from concord.store import tables as t

ENTITY = {
    Customer: "customers",
    Order: "orders",
    Invoice: "invoices",
    Payment: "payments",
    ExchangeRate: "exchange_rates",
}


def at(y: int, m: int, d: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(y, m, d, hour, minute, tzinfo=UTC)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = Store.open(store_url)
    yield s
    s.dispose()


def write(store: Store, *models: CanonicalModel) -> None:
    with store.begin() as conn:
        for m in models:
            entity = ENTITY[type(m)]
            row = canonical_row(entity, m, "run_test")
            store.upsert(conn, t.CANONICAL_TABLES[entity], [row], ["source", "source_id"])


def ref(source: str, entity: str, sid: str) -> SourceRef:
    return SourceRef(system=source, entity=entity, id=sid)


def cust(source: str, sid: str, name: str, **kw: Any) -> Customer:
    return Customer(ref=ref(source, "customers", sid), name=name, **kw)


def invoice(source: str, sid: str, customer: str, issued: datetime, total: str, open_: str,
            **kw: Any) -> Invoice:  # fmt: skip
    kw.setdefault("currency", "EUR")
    kw.setdefault("status", "posted")
    return Invoice(
        ref=ref(source, "invoices", sid),
        number=sid,
        customer_id=customer,
        issued_at=issued,
        total=Decimal(total),
        open_amount=Decimal(open_),
        **kw,
    )


def payment(source: str, sid: str, customer: str, inv: str | None, paid: datetime, amount: str,
            **kw: Any) -> Payment:  # fmt: skip
    kw.setdefault("currency", "EUR")
    kw.setdefault("status", "completed")
    return Payment(
        ref=ref(source, "payments", sid),
        reference=sid,
        customer_id=customer,
        invoice_id=inv,
        paid_at=paid,
        amount=Decimal(amount),
        **kw,
    )


def rate(source: str, currency: str, valid_from: date, value: str, **kw: Any) -> ExchangeRate:
    return ExchangeRate(
        ref=ref(source, "exchange_rates", f"{currency}-{valid_from}"),
        currency=currency,
        valid_from=valid_from,
        rate=Decimal(value),
        **kw,
    )


# These figures rest on an e-mail shared by two records; the default rules leave e-mail out.
EMAIL_RULES = {"rules": ["crossref", "tax_id", "email"]}


def config(**extra: Any) -> PipelineConfig:
    return PipelineConfig.model_validate({"sources": {}, "base_currency": "EUR", **extra})


def run(store: Store, cfg: PipelineConfig, as_of: datetime, **kw: Any) -> dict[str, Any]:
    resolve_identities(store, cfg.identity, "run_1")
    report = build(store, cfg, as_of, "run_1", **kw)
    with store.engine.connect() as conn:
        rows = {d["source_ids"][0]: d for d in whole_rows(conn)}
    return {"report": report, "rows": rows}


def test_an_invoice_due_today_is_not_overdue_until_the_business_day_ends(store: Store) -> None:
    write(
        store,
        cust("erp", "1", "Acme"),
        invoice("erp", "i1", "1", at(2026, 11, 1), "100", "100", due_at=at(2026, 11, 30)),
    )
    cfg = config(timezone="Europe/Berlin")
    late_evening = run(store, cfg, at(2026, 11, 30, 22, 30))  # 23:30 in Berlin
    row = late_evening["rows"]["erp:1"]
    assert row["as_of"] == "2026-11-30" and row["timezone"] == "Europe/Berlin"
    assert Decimal(row["overdue_balance"]) == 0
    next_day = run(store, cfg, at(2026, 11, 30, 23, 30))  # 00:30 on Dec 1 in Berlin
    assert Decimal(next_day["rows"]["erp:1"]["overdue_balance"]) == Decimal("100.00")
    assert next_day["report"].as_of == "2026-12-01"


def test_days_since_and_lifecycle_count_business_days(store: Store) -> None:
    write(
        store,
        cust("erp", "1", "Acme"),
        Order(
            ref=ref("erp", "orders", "o1"),
            number="o1",
            customer_id="1",
            ordered_at=at(2026, 11, 1, 23, 30),  # Nov 2 in Berlin
            status="confirmed",
            currency="EUR",
            net_total=Decimal(10),
            gross_total=Decimal(10),
        ),
    )
    row = run(store, config(timezone="Europe/Berlin"), at(2026, 11, 12, 12))["rows"]["erp:1"]
    assert row["days_since_last_order"] == 10
    assert row["lifecycle_stage"] == "new"


def test_paid_plus_open_is_invoiced_or_the_reason_is_given(store: Store) -> None:
    write(
        store,
        cust("erp", "1", "Acme"),
        # 100 invoiced, 60 + 15 allocated, 25 open: adds up
        invoice("erp", "i1", "1", at(2026, 9, 1), "100", "25"),
        payment("erp", "p1", "1", "i1", at(2026, 9, 11), "60"),
        payment("erp", "p2", "1", "i1", at(2026, 9, 21), "15"),
        # 50 allocated by a payment order the ledger has not booked: still open in the ERP
        invoice("erp", "i2", "1", at(2026, 10, 1), "50", "50"),
        payment("erp", "p3", "1", "i2", at(2026, 10, 5), "50"),
        # settled in the ERP by a credit note concord does not see
        invoice("erp", "i3", "1", at(2026, 10, 1), "30", "0", status="paid"),
        # money received without an invoice, and a pending payment (not money yet)
        payment("erp", "p4", "1", None, at(2026, 10, 9), "7"),
        payment("erp", "p5", "1", "i1", at(2026, 10, 9), "25", status="pending"),
    )
    row = run(store, config(), at(2026, 11, 1))["rows"]["erp:1"]
    assert Decimal(row["invoiced_total"]) == Decimal("180.00")
    assert Decimal(row["paid_total"]) == Decimal("125.00")
    assert Decimal(row["open_balance"]) == Decimal("75.00")
    assert Decimal(row["unallocated_paid"]) == Decimal("7.00")
    gaps = {g["reason"]: Decimal(g["amount"]) for g in row["balance_gaps"]}
    assert sum(gaps.values()) == Decimal(180 - 125 - 75)
    assert gaps == {
        "allocated, but the ERP still shows it open (payment not booked in the ledger)": -50,
        "settled in the ERP without an allocation concord knows (credit, write-off)": 30,
    }
    # days to pay weighted by amount: (60*10 + 15*20 + 50*4) / 125
    assert row["average_days_to_pay"] == round((600 + 300 + 200) / 125, 1)


def test_each_document_converts_at_its_own_date_and_says_which_rate(
    store: Store, tmp_path: Path
) -> None:
    rates = tmp_path / "rates.csv"
    rates.write_text("date,currency,rate\n2026-01-01,USD,0.90\n2026-06-01,USD,0.95\n")
    write(
        store,
        cust("erp", "1", "Acme"),
        invoice("erp", "i1", "1", at(2026, 3, 1), "100", "0", currency="USD", status="paid"),
        payment("erp", "p1", "1", "i1", at(2026, 7, 1), "100", currency="USD"),
        invoice("erp", "i2", "1", at(2025, 12, 1), "10", "10", currency="USD"),  # before any rate
        invoice("erp", "i3", "1", at(2026, 8, 1), "20", "20", currency="GBP"),
    )
    cfg = config(fx={"rates_csv": str(rates)})
    out = run(store, cfg, at(2026, 11, 1))
    row = out["rows"]["erp:1"]
    assert Decimal(row["invoiced_total"]) == Decimal("90.00")  # at the invoice date
    assert Decimal(row["paid_total"]) == Decimal("95.00")  # at the payment date
    assert {g["reason"]: g["amount"] for g in row["balance_gaps"]} == {
        "exchange difference on settled foreign-currency invoices": "-5.00"
    }
    [usd] = row["fx"]
    assert usd["source"] == "rates_csv" and usd["documents"] == 2
    assert usd["rates"] == ["from 2026-01-01: 1 USD = 0.9 EUR", "from 2026-06-01: 1 USD = 0.95 EUR"]
    assert row["unconverted"] == {"GBP": 1, "USD": 1}
    assert out["report"].missing_rates == {"GBP": ["2026-08-01"], "USD": ["2025-12-01"]}


def test_an_erps_own_rates_on_an_unnamed_base_convert_like_the_erp(store: Store) -> None:
    # Tryton: EUR 2.0, then 2.5; USD 1.0, then 1.25 (units per common unit)
    write(
        store,
        cust("tryton", "8", "Foxtrot"),
        rate("tryton", "EUR", date(1, 1, 1), "1", units=Decimal("2.0")),
        rate("tryton", "EUR", date(2026, 11, 10), "1", units=Decimal("2.5")),
        rate("tryton", "USD", date(2026, 10, 1), "1", units=Decimal("1.0")),
        rate("tryton", "USD", date(2026, 11, 25), "1", units=Decimal("1.25")),
        invoice("tryton", "18", "8", at(2026, 11, 20), "120", "70", currency="USD"),
        payment("tryton", "line-80", "8", "18", at(2026, 12, 1), "50", currency="USD"),
    )
    row = run(store, config(), at(2026, 12, 1, 12))["rows"]["tryton:8"]
    assert Decimal(row["invoiced_total"]) == Decimal("300.00")  # 120 * 2.5 / 1.0
    assert Decimal(row["paid_total"]) == Decimal("100.00")  # 50 * 2.5 / 1.25
    assert Decimal(row["open_balance"]) == Decimal("200.00")  # what the ledger holds open
    assert row["balance_gaps"] == []


def test_the_erp_receivable_is_checked_and_the_push_gate_holds(store: Store) -> None:
    write(
        store,
        cust("erp", "1", "Acme", erp_receivable=Decimal("40"), erp_receivable_currency="EUR"),
        cust("erp", "2", "Bolt", erp_receivable=Decimal("95.50"), erp_receivable_currency="EUR"),
        invoice("erp", "i1", "1", at(2026, 9, 1), "40", "40"),
        invoice("erp", "i2", "2", at(2026, 9, 1), "100", "100"),
    )
    cfg = config(push_gate={"receivable_tolerance": "1.00"})
    out = run(store, cfg, at(2026, 11, 1))
    assert Decimal(out["rows"]["erp:1"]["erp_receivable_difference"]) == 0
    assert Decimal(out["rows"]["erp:2"]["erp_receivable_difference"]) == Decimal("4.50")
    check = out["report"].receivable
    assert (check["checked"], check["matching"], check["differing"]) == (2, 1, 1)
    assert check["difference"] == "4.50"
    assert check["differences"][0]["record"] == "erp:2"
    with store.engine.connect() as conn:
        verdict = gate(conn, cfg)
        assert verdict.held and verdict.difference == Decimal("4.50")
        assert "push held" in verdict.message and "--push-anyway" in verdict.message
        assert not gate(conn, config(push_gate={"receivable_tolerance": "5"})).held
        assert not gate(conn, config()).held  # no tolerance configured: never held


def test_a_source_without_invoices_takes_its_open_balance_from_the_erp(store: Store) -> None:
    write(
        store,
        cust(
            "nav",
            "10000",
            "Krause",
            erp_receivable=Decimal("218.96"),
            erp_receivable_currency="EUR",
            number="10000",
        ),
        payment("nav", "2", "10000", "S-INV102001", at(2026, 10, 1), "109.48"),
    )
    out = run(store, config(), at(2026, 11, 1), invoice_sources=frozenset())
    row = out["rows"]["nav:10000"]
    assert Decimal(row["open_balance"]) == Decimal("218.96")
    assert row["open_balance_basis"] == "erp_receivable"
    assert Decimal(row["paid_total"]) == Decimal("109.48")  # against an invoice not pulled
    assert row["erp_receivable_difference"] is None  # taken from the ERP, not checked
    assert out["report"].receivable["taken_from_erp"] == 1


def test_customers_show_finds_a_customer_by_its_erp_number(store: Store) -> None:
    write(
        store,
        cust("erp", "C-00002", "Acme GmbH", number="C00002", emails=["a@acme.de"]),
        cust("nav", "10000", "ACME GMBH", number="10000", emails=["a@acme.de"]),
        cust("nav", "10010", "Other", number="C00002-X"),
    )
    run(store, config(identity=EMAIL_RULES), at(2026, 11, 1))
    [by_number] = find_customers(store, "C00002")
    assert by_number.data["source_ids"] == ["erp:C-00002", "nav:10000"]
    [by_source] = find_customers(store, "nav:10000")
    assert by_source.concord_id == by_number.concord_id
    numbers = [(n["source"], n["number"]) for n in by_number.data["customer_numbers"]]
    assert numbers == [("erp", "C00002"), ("nav", "10000")]
    console = Console(record=True, width=200)
    render_customer(console, by_number)
    text = console.export_text()
    assert "C00002" in text and "10000" in text and "as of 2026-11-01" in text


def test_survivorship_keeps_the_original_and_unions_contacts(store: Store) -> None:
    write(
        store,
        cust(
            "erp",
            "1",
            "Van den Berg Logistics B.V.",
            emails=["info@vdberg.nl"],
            created_at=at(2020, 1, 1),
            updated_at=at(2025, 1, 1),
        ),
        cust(
            "erp",
            "2",
            "Van dn Berg Logistics",
            emails=["info@vdberg.nl", "ap@vdberg.nl"],
            phones=["+31 10 1234567"],
            created_at=at(2024, 6, 1),
            updated_at=at(2026, 10, 1),
        ),
    )
    cfg = config()
    row = run(store, cfg, at(2026, 11, 1))["rows"]["erp:1"]
    assert row["name"]["value"] == "Van den Berg Logistics B.V."
    assert row["name"]["source"] == "erp:1"
    assert row["name"]["rule"] == "oldest record (created 2020-01-01)"
    assert row["emails"] == ["info@vdberg.nl", "ap@vdberg.nl"]
    assert row["phone"]["source"] == "erp:2" and row["phone"]["rule"] == "only record"
    # the duplicate changes again: the golden name does not flip
    write(
        store,
        cust(
            "erp",
            "2",
            "VAN DEN BERG",
            emails=["info@vdberg.nl"],
            created_at=at(2024, 6, 1),
            updated_at=at(2026, 10, 20),
        ),
    )
    again = run(store, cfg, at(2026, 11, 2))["rows"]["erp:1"]
    assert again["name"] == row["name"]


def test_source_priority_comes_before_age(store: Store) -> None:
    write(
        store,
        cust("erp", "1", "Acme Old", emails=["x@acme.de"], created_at=at(2019, 1, 1)),
        cust("crm_import", "7", "Acme Preferred", emails=["x@acme.de"], created_at=at(2025, 1, 1)),
    )
    survivorship = {"source_priority": ["crm_import", "erp"]}
    cfg = config(identity={**EMAIL_RULES, "survivorship": survivorship})
    row = run(store, cfg, at(2026, 11, 1))["rows"]["crm_import:7"]
    assert (row["name"]["value"], row["name"]["rule"]) == (
        "Acme Preferred",
        "source priority (crm_import first)",
    )
