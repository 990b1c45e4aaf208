"""Every document state of Tryton, NAV and Business Central, through the shipped mappings.

For each state the test names what finance should read it as: revenue (and open work while not
yet delivered), open work only, a quote, billed, money received, or nothing. Quote and draft are
never revenue; cancelled is never anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from concord.mapping import Mapping, load_mapping
from concord.model import (
    ALLOCATED,
    BILLED,
    ORDER_MEANING,
    InvoiceStatus,
    OrderStatus,
    PaymentStatus,
    ShipmentStatus,
)

MAPPINGS = Path(__file__).resolve().parents[3] / "mappings"
_loaded: dict[str, Mapping] = {}


def mapped_status(mapping: str, record: dict[str, Any]) -> str:
    m = _loaded.get(mapping) or _loaded.setdefault(mapping, load_mapping(MAPPINGS / mapping))
    return str(m.apply(record)["status"])


def meaning(entity: str, status: str) -> str:
    if entity == "orders":
        return ORDER_MEANING[OrderStatus(status)].value
    if entity == "invoices":
        return "billed" if InvoiceStatus(status) in BILLED else "nothing"
    if entity == "payments":
        return "received" if PaymentStatus(status) in ALLOCATED else "nothing"
    return "in_transit" if ShipmentStatus(status) is ShipmentStatus.SHIPPED else "not_in_transit"


BASE: dict[str, dict[str, Any]] = {
    "tryton/sale.yaml": {
        "id": 1,
        "party": 2,
        "sale_date": "2026-01-02",
        "currency": {"code": "EUR"},
        "untaxed_amount": "1",
        "total_amount": "1",
        "lines": [],
    },
    "tryton/invoice.yaml": {
        "id": 1,
        "party": 2,
        "invoice_date": "2026-01-02",
        "currency": {"code": "EUR"},
        "total_amount": "1",
        "amount_to_pay": "1",
    },
    "tryton/shipment.yaml": {"id": 1, "number": "1", "customer": 2, "outgoing_moves": []},
    "tryton/payment.yaml": {
        "id": 1,
        "number": "1",
        "party": 2,
        "date": "2026-01-02",
        "amount": "5",
        "currency": {"code": "EUR"},
    },
    "tryton/payment_line.yaml": {
        "id": 1,
        "party": 2,
        "date": "2026-01-02",
        "amount": "-5",
        "amount_currency": {"code": "EUR"},
    },
    "nav/orders.yaml": {
        "No": "S-1",
        "Sell_to_Customer_No": "10000",
        "Order_Date": "2026-01-02",
        "SalesLines": {
            "Sales_Order_Line": [
                {
                    "Type": "Item",
                    "No": "1000",
                    "Quantity": "1",
                    "Unit_Price": "1",
                    "Line_Amount": "1",
                    "Quantity_Shipped": "0",
                    "Total_Amount_Excl_VAT": "1",
                    "Total_Amount_Incl_VAT": "1.19",
                }
            ]
        },
    },
    "nav/shipments.yaml": {
        "No": "S-1",
        "Sell_to_Customer_No": "10000",
        "Shipment_Date": "2026-01-05",
        "SalesLines": {"Sales_Order_Line": [{"Quantity": "2", "Quantity_Shipped": "0"}]},
    },
    "nav/cash_receipts.yaml": {
        "Journal_Template_Name": "CASHRCPT",
        "Journal_Batch_Name": "GENERAL",
        "Line_No": 10000,
        "Posting_Date": "2026-01-02",
        "Document_No": "G1",
        "Account_Type": "Customer",
        "Account_No": "10000",
        "Amount": "-5",
    },
    "nav/payments.yaml": {
        "Entry_No": 1,
        "Posting_Date": "2026-01-02",
        "Document_No": "P-1",
        "Customer_No": "10000",
        "Amount": "-5",
    },
    "business_central/sales_orders.yaml": {
        "id": "o1",
        "number": "S-1",
        "orderDate": "2026-01-02",
        "customerId": "c1",
        "totalAmountExcludingTax": 1,
        "totalAmountIncludingTax": 1,
        "fullyShipped": False,
    },
    "business_central/sales_invoices.yaml": {
        "id": "i1",
        "number": "I-1",
        "invoiceDate": "2026-01-02",
        "customerId": "c1",
        "totalAmountIncludingTax": 1,
        "remainingAmount": 1,
    },
}
ENTITY = {
    "sale": "orders",
    "sales_orders": "orders",
    "orders": "orders",
    "invoice": "invoices",
    "sales_invoices": "invoices",
    "shipment": "shipments",
    "payment": "payments",
    "payment_line": "payments",
    "payments": "payments",
    "shipments": "shipments",
    "cash_receipts": "payments",
}

# (mapping, the ERP's state fields, canonical status, what it counts as)
STATES: list[tuple[str, dict[str, Any], str, str]] = [
    ("tryton/sale.yaml", {"state": "draft"}, "draft", "nothing"),
    ("tryton/sale.yaml", {"state": "quotation"}, "quote", "quote"),
    ("tryton/sale.yaml", {"state": "confirmed"}, "confirmed", "revenue_open"),
    ("tryton/sale.yaml", {"state": "processing"}, "confirmed", "revenue_open"),
    ("tryton/sale.yaml", {"state": "processing", "shipment_state": "sent"}, "shipped", "revenue"),
    ("tryton/sale.yaml", {"state": "done"}, "closed", "revenue"),
    ("tryton/sale.yaml", {"state": "cancelled"}, "cancelled", "nothing"),
    ("tryton/invoice.yaml", {"state": "draft"}, "draft", "nothing"),
    ("tryton/invoice.yaml", {"state": "validated"}, "draft", "nothing"),
    ("tryton/invoice.yaml", {"state": "posted"}, "posted", "billed"),
    ("tryton/invoice.yaml", {"state": "paid"}, "paid", "billed"),
    ("tryton/invoice.yaml", {"state": "cancelled"}, "cancelled", "nothing"),
    ("tryton/shipment.yaml", {"state": "draft"}, "pending", "not_in_transit"),
    ("tryton/shipment.yaml", {"state": "waiting"}, "pending", "not_in_transit"),
    ("tryton/shipment.yaml", {"state": "assigned"}, "pending", "not_in_transit"),
    ("tryton/shipment.yaml", {"state": "picked"}, "pending", "not_in_transit"),
    ("tryton/shipment.yaml", {"state": "packed"}, "pending", "not_in_transit"),
    ("tryton/shipment.yaml", {"state": "shipped"}, "shipped", "in_transit"),
    ("tryton/shipment.yaml", {"state": "done"}, "delivered", "not_in_transit"),
    ("tryton/shipment.yaml", {"state": "cancelled"}, "cancelled", "not_in_transit"),
    ("tryton/payment.yaml", {"state": "draft"}, "pending", "nothing"),
    ("tryton/payment.yaml", {"state": "submitted"}, "pending", "nothing"),
    ("tryton/payment.yaml", {"state": "approved"}, "pending", "nothing"),
    ("tryton/payment.yaml", {"state": "processing"}, "pending", "nothing"),
    ("tryton/payment.yaml", {"state": "succeeded"}, "completed", "received"),
    ("tryton/payment.yaml", {"state": "failed"}, "failed", "nothing"),
    ("tryton/payment_line.yaml", {"move": {"state": "posted"}}, "completed", "received"),
    ("tryton/payment_line.yaml", {"move": {"state": "draft"}}, "pending", "nothing"),
    ("nav/orders.yaml", {"Status": "Open"}, "open", "open_work"),
    ("nav/orders.yaml", {"Status": "Pending_Approval"}, "open", "open_work"),
    ("nav/orders.yaml", {"Status": "Released"}, "confirmed", "revenue_open"),
    ("nav/orders.yaml", {"Status": "Pending_Prepayment"}, "confirmed", "revenue_open"),
    ("nav/shipments.yaml", {}, "pending", "not_in_transit"),
    (
        "nav/shipments.yaml",
        {
            "SalesLines": {
                "Sales_Order_Line": [{"Quantity_Shipped": "0"}, {"Quantity_Shipped": "1"}]
            }
        },
        "shipped",
        "in_transit",
    ),
    ("nav/payments.yaml", {"Document_Type": "Payment"}, "completed", "received"),
    ("nav/cash_receipts.yaml", {"Document_Type": "Payment"}, "pending", "nothing"),
    (
        "nav/payments.yaml",
        {"Document_Type": "Refund", "Amount": "5"},
        "refunded",
        "nothing",
    ),
    ("business_central/sales_orders.yaml", {"status": "Draft"}, "open", "open_work"),
    ("business_central/sales_orders.yaml", {"status": "In Review"}, "open", "open_work"),
    ("business_central/sales_orders.yaml", {"status": "Open"}, "confirmed", "revenue_open"),
    (
        "business_central/sales_orders.yaml",
        {"status": "Open", "fullyShipped": True},
        "shipped",
        "revenue",
    ),
    ("business_central/sales_invoices.yaml", {"status": "Draft"}, "draft", "nothing"),
    ("business_central/sales_invoices.yaml", {"status": "In Review"}, "draft", "nothing"),
    ("business_central/sales_invoices.yaml", {"status": "Open"}, "posted", "billed"),
    ("business_central/sales_invoices.yaml", {"status": "Paid"}, "paid", "billed"),
    ("business_central/sales_invoices.yaml", {"status": "Canceled"}, "cancelled", "nothing"),
    ("business_central/sales_invoices.yaml", {"status": "Corrective"}, "cancelled", "nothing"),
]


@pytest.mark.parametrize(
    ("mapping", "state", "status", "counts_as"),
    STATES,
    ids=[f"{m[:-5]}:{'+'.join(map(str, s.values()))}" for m, s, _st, _c in STATES],
)
def test_each_record_state_has_a_meaning(
    mapping: str, state: dict[str, Any], status: str, counts_as: str
) -> None:
    got = mapped_status(mapping, {**BASE[mapping], **state})
    entity = ENTITY[Path(mapping).stem]
    assert (got, meaning(entity, got)) == (status, counts_as)


def test_quote_and_draft_are_never_revenue_and_cancelled_never_anything() -> None:
    for status in (OrderStatus.DRAFT, OrderStatus.QUOTE, OrderStatus.OPEN):
        assert not ORDER_MEANING[status].is_revenue
    cancelled = ORDER_MEANING[OrderStatus.CANCELLED]
    assert not cancelled.is_revenue and not cancelled.is_open_work
    assert set(ORDER_MEANING) == set(OrderStatus)
