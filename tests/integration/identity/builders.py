"""Canonical rows written straight into a store, the way the map stage writes them."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from concord.model import Customer, Invoice, Order, Payment, Shipment, SourceRef
from concord.pipeline.map import canonical_row
from concord.store import Store
from concord.store import tables as t

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def customer(source: str, sid: str, name: str, **kw: Any) -> Customer:
    """A canonical customer; ``postcode``/``city``/``phone``/``email`` are shorthands."""
    address: dict[str, Any] = {k: kw.pop(k) for k in ("postcode", "city") if k in kw}
    if address:
        address["country"] = kw.get("country")
        kw["addresses"] = [address]
    if "phone" in kw:
        kw["phones"] = [kw.pop("phone")]
    if "email" in kw:
        kw["emails"] = [kw.pop("email")]
    kw.setdefault("updated_at", T0)
    return Customer(ref=SourceRef(system=source, entity="customers", id=sid), name=name, **kw)


def write(store: Store, *models: Any, run_id: str = "run_test") -> None:
    """Upsert canonical models into their tables."""
    by_entity: dict[str, list[dict[str, Any]]] = {}
    entity_of: dict[type, str] = {
        Customer: "customers",
        Order: "orders",
        Shipment: "shipments",
        Invoice: "invoices",
        Payment: "payments",
    }
    for m in models:
        entity = entity_of[type(m)]
        by_entity.setdefault(entity, []).append(canonical_row(entity, m, run_id))
    with store.begin() as conn:
        for entity, rows in by_entity.items():
            store.upsert(conn, t.CANONICAL_TABLES[entity], rows, ["source", "source_id"])


def order(source: str, sid: str, customer_id: str, at: datetime, gross: str, **kw: Any) -> Order:
    kw.setdefault("status", "confirmed")
    kw.setdefault("currency", "EUR")
    return Order(
        ref=SourceRef(system=source, entity="orders", id=sid),
        number=sid,
        customer_id=customer_id,
        ordered_at=at,
        net_total=Decimal(gross),
        gross_total=Decimal(gross),
        **kw,
    )
