"""The incremental 360 equals a full rebuild, row for row, night after night.

A small store with orders, invoices, payments, shipments and dated rates goes through nights of
changes (a new order, a paid invoice, a changed customer, a merged and a split golden customer,
an order ageing out of the 12 months, an invoice becoming overdue, a shipment turning late, a
tombstoned order, a row removed without a trace, a rate added). After each incremental build
the stored table is compared with what a full computation gives, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import delete, select, update

from concord.config import PipelineConfig
from concord.customer360.dates import BusinessCalendar
from concord.customer360.fx import fx_table
from concord.customer360.metrics import Figures, aggregate, collect
from concord.customer360.stored import BOOKKEEPING, row_hash, whole, whole_select
from concord.model import (
    CanonicalModel,
    Customer,
    ExchangeRate,
    Invoice,
    Order,
    Payment,
    Shipment,
    SourceRef,
)
from concord.pipeline.build_360 import Daily, Population, build, compute
from concord.pipeline.map import canonical_row
from concord.pipeline.reports import Build360Report
from concord.pipeline.resolve import resolve_identities
from concord.store import Store
from concord.store import tables as t

ENTITY = {
    Customer: "customers",
    Order: "orders",
    Invoice: "invoices",
    Payment: "payments",
    Shipment: "shipments",
    ExchangeRate: "exchange_rates",
}
START = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = Store.open(store_url)
    yield s
    s.dispose()


def config() -> PipelineConfig:
    return PipelineConfig.model_validate(
        {
            "sources": {},
            "base_currency": "EUR",
            "timezone": "Europe/Berlin",
            "identity": {"churn": {"min_repeat_customers": 5}},
        }
    )


def ref(entity: str, sid: str, source: str = "erp") -> SourceRef:
    return SourceRef(system=source, entity=entity, id=sid)


def write(store: Store, run_id: str, *models: CanonicalModel) -> None:
    with store.begin() as conn:
        for m in models:
            entity = ENTITY[type(m)]
            row = canonical_row(entity, m, run_id)
            store.upsert(conn, t.CANONICAL_TABLES[entity], [row], ["source", "source_id"])


def customer(i: int, source: str = "erp", **kw: Any) -> Customer:
    kw.setdefault("name", f"Customer {i}")
    kw.setdefault("tax_id", f"DE{i:09d}")
    return Customer(ref=ref("customers", f"c{i}", source), **kw)


def order(sid: str, cust: int, when: datetime, total: str, **kw: Any) -> Order:
    kw.setdefault("status", "confirmed")
    kw.setdefault("currency", "EUR")
    return Order(
        ref=ref("orders", sid),
        number=sid,
        customer_id=f"c{cust}",
        ordered_at=when,
        net_total=Decimal(total),
        gross_total=Decimal(total),
        **kw,
    )


def invoice(sid: str, cust: int, when: datetime, total: str, open_: str, **kw: Any) -> Invoice:
    kw.setdefault("status", "posted")
    kw.setdefault("currency", "EUR")
    return Invoice(
        ref=ref("invoices", sid),
        number=sid,
        customer_id=f"c{cust}",
        issued_at=when,
        total=Decimal(total),
        open_amount=Decimal(open_),
        **kw,
    )


def payment(
    sid: str, cust: int, inv: str | None, when: datetime, amount: str, **kw: Any
) -> Payment:
    kw.setdefault("status", "completed")
    kw.setdefault("currency", "EUR")
    return Payment(
        ref=ref("payments", sid),
        reference=sid,
        customer_id=f"c{cust}",
        invoice_id=inv,
        paid_at=when,
        amount=Decimal(amount),
        **kw,
    )


def shipment(sid: str, cust: int, promised: datetime, delivered: datetime | None) -> Shipment:
    return Shipment(
        ref=ref("shipments", sid),
        number=sid,
        customer_id=f"c{cust}",
        promised_at=promised,
        delivered_at=delivered,
        status="delivered" if delivered else "shipped",
    )


def rate(currency: str, valid_from: date, value: str) -> ExchangeRate:
    return ExchangeRate(
        ref=ref("exchange_rates", f"{currency}-{valid_from}"),
        currency=currency,
        valid_from=valid_from,
        rate=Decimal(value),
        base="EUR",
    )


def seed(store: Store, n: int = 40, seed_: int = 7) -> None:
    """Customers with a year of orders, invoices (some USD), payments and shipments."""
    rnd = random.Random(seed_)
    models: list[CanonicalModel] = [rate("USD", date(2025, 1, 1), "0.9")]
    for i in range(n):
        models.append(customer(i))
        for k in range(rnd.randint(0, 6)):
            when = START - timedelta(days=rnd.randint(1, 500), hours=rnd.randint(0, 23))
            cur = "USD" if rnd.random() < 0.2 else "EUR"
            total = f"{rnd.randint(10, 900)}.{rnd.randint(0, 99):02d}"
            models.append(order(f"o{i}-{k}", i, when, total, currency=cur))
            if rnd.random() < 0.7:
                open_ = total if rnd.random() < 0.4 else "0"
                due = when + timedelta(days=rnd.choice([14, 30, 60]))
                models.append(invoice(f"i{i}-{k}", i, when, total, open_, currency=cur, due_at=due))
                if open_ == "0":
                    paid = when + timedelta(days=rnd.randint(1, 40))
                    models.append(payment(f"p{i}-{k}", i, f"i{i}-{k}", paid, total, currency=cur))
            if rnd.random() < 0.5:
                promised = when + timedelta(days=5)
                late = rnd.random() < 0.3
                delivered = (
                    None if rnd.random() < 0.2 else promised + timedelta(days=2 if late else -1)
                )
                models.append(shipment(f"s{i}-{k}", i, promised, delivered))
    write(store, "night_1", *models)


def stored_table(store: Store) -> dict[str, tuple[Any, ...]]:
    c, d = t.customer360, t.customer360_daily
    with store.engine.connect() as conn:
        rows = conn.execute(whole_select(c.c.name, d.c.value_tier, d.c.content_hash))
        return {
            gid: (
                name,
                tier,
                h,
                {k: v for k, v in whole(base, daily).items() if k not in BOOKKEEPING},
            )
            for gid, base, daily, name, tier, h in rows
        }


def full_table(store: Store, cfg: PipelineConfig, as_of: datetime) -> dict[str, tuple[Any, ...]]:
    out = {}
    for row in compute(store, cfg, as_of, Build360Report()):
        data = row.model_dump(mode="json")
        clean = {k: v for k, v in data.items() if k not in BOOKKEEPING}
        out[row.concord_id] = (
            str(row.name.value)[:300],
            row.value_tier.value,
            row_hash(data),
            clean,
        )
    return out


def night(store: Store, cfg: PipelineConfig, run_id: str, as_of: datetime) -> Build360Report:
    """Resolve and build incrementally, then check the table against a full computation."""
    resolve_identities(store, cfg.identity, run_id)
    report = build(store, cfg, as_of, run_id)
    stored, full = stored_table(store), full_table(store, cfg, as_of)
    assert set(stored) == set(full)
    for gid, want in full.items():
        assert stored[gid] == want, gid
    return report


def golden_of(store: Store, source: str, sid: str) -> str:
    il = t.identity_links
    with store.engine.connect() as conn:
        return str(
            conn.execute(
                select(il.c.concord_id).where(il.c.source == source, il.c.source_id == sid)
            ).scalar_one()
        )


def test_incremental_nights_equal_a_full_rebuild(store: Store) -> None:
    cfg = config()
    seed(store)
    first = night(store, cfg, "night_1", START)
    assert first.full_reason == "first build" and first.recomputed == first.customers == 40

    # a new order, and an invoice paid
    as_of = START + timedelta(days=1)
    write(
        store,
        "night_2",
        order("o3-new", 3, as_of - timedelta(hours=3), "250.00"),
        invoice("i5-paid", 5, START - timedelta(days=20), "80.00", "0", due_at=START),
        payment("p5-paid", 5, "i5-paid", as_of - timedelta(hours=2), "80.00"),
    )
    r = night(store, cfg, "night_2", as_of)
    assert r.full_reason == "" and 2 <= r.recomputed_changed < 10

    # a changed customer, and a rate added from yesterday (documents of USD dated since)
    as_of += timedelta(days=1)
    write(
        store,
        "night_3",
        customer(7, name="Customer Seven GmbH", emails=["seven@example.com"]),
        rate("USD", (as_of - timedelta(days=2)).date(), "0.95"),
        order("o8-usd", 8, as_of - timedelta(hours=30), "100.00", currency="USD"),
    )
    r = night(store, cfg, "night_3", as_of)
    assert r.full_reason == "" and r.recomputed_changed >= 2

    # a second source's record with customer 9's tax id: merged into one golden customer
    as_of += timedelta(days=1)
    write(store, "night_4", customer(9, source="crm", name="Customer 9", crossrefs=["erp:c9"]))
    r = night(store, cfg, "night_4", as_of)
    assert golden_of(store, "crm", "c9") == golden_of(store, "erp", "c9")
    assert r.full_reason == ""

    # ... and split again when its cross reference and tax id go
    as_of += timedelta(days=1)
    write(store, "night_5", customer(9, source="crm", name="Other 9", tax_id="FR1"))
    r = night(store, cfg, "night_5", as_of)
    assert golden_of(store, "crm", "c9") != golden_of(store, "erp", "c9")

    # 40 days on: orders leave the 12 months, invoices fall overdue, shipments turn late
    as_of += timedelta(days=40)
    write(
        store,
        "night_6",
        order("o11-old", 11, as_of - timedelta(days=364, hours=1), "70.00"),
        invoice(
            "i12-due",
            12,
            as_of - timedelta(days=10),
            "90.00",
            "90.00",
            due_at=as_of + timedelta(days=2),
        ),
        shipment("s13-soon", 13, as_of + timedelta(days=1), None),
    )
    r = night(store, cfg, "night_6", as_of)
    assert r.full_reason == "" and r.recomputed_boundary > 0
    for days in (1, 2, 3):  # the order ages out, the shipment turns late, the invoice falls due
        r = night(store, cfg, f"night_7_{days}", as_of + timedelta(days=days))
        assert r.full_reason == ""
    as_of += timedelta(days=3)

    # a tombstoned order, a payment removed without a trace (quarantined, excluded)
    as_of += timedelta(days=1)
    with store.begin() as conn:
        o, p = t.orders, t.payments
        conn.execute(
            update(o).where(o.c.source_id == "o3-new").values(state="deleted", run_id="night_8")
        )
        conn.execute(delete(p).where(p.c.source_id == "p5-paid"))
    r = night(store, cfg, "night_8", as_of)
    assert r.full_reason == "" and r.recomputed_changed >= 2

    # nothing changed, the same moment: nothing recomputed, nothing written
    r = night(store, cfg, "night_9", as_of)
    assert (r.recomputed, r.written, r.full_reason) == (0, 0, "")

    # asked for, a full rebuild writes nothing new: the incremental table is the full one
    r = build(store, cfg, as_of, "night_10", full=True)
    assert r.full_reason == "full rebuild asked for" and r.written == 0


@pytest.mark.parametrize("seed_", [1, 2, 3])
def test_random_nights_equal_a_full_rebuild(store: Store, seed_: int) -> None:
    """Random changes over random gaps between nights (a cheap property test)."""
    cfg = config()
    seed(store, n=30, seed_=seed_)
    rnd = random.Random(seed_)
    as_of = START
    night(store, cfg, "n0", as_of)
    for k in range(1, 7):
        as_of += timedelta(days=rnd.choice([0, 1, 1, 7, 30]), hours=rnd.randint(0, 5))
        run_id = f"n{k}"
        models: list[CanonicalModel] = []
        for _ in range(rnd.randint(1, 4)):
            i = rnd.randrange(30)
            pick = rnd.random()
            if pick < 0.3:
                models.append(
                    order(f"o{i}-r{k}", i, as_of - timedelta(days=rnd.randint(0, 400)), "42.00")
                )
            elif pick < 0.5:
                due = as_of + timedelta(days=rnd.randint(-3, 5))
                issued = as_of - timedelta(days=20)
                models.append(invoice(f"i{i}-r{k}", i, issued, "30.00", "30.00", due_at=due))
            elif pick < 0.6:
                models.append(customer(i, name=f"Renamed {i}-{k}"))
            elif pick < 0.7:
                models.append(
                    rate("USD", (as_of - timedelta(days=rnd.randint(0, 60))).date(), "0.93")
                )
            elif pick < 0.8:
                models.append(
                    shipment(f"s{i}-r{k}", i, as_of + timedelta(hours=rnd.randint(-48, 48)), None)
                )
            else:
                with store.begin() as conn:
                    o = t.orders
                    victim = conn.execute(
                        select(o.c.source_id).where(o.c.customer_id == f"c{i}").limit(1)
                    ).scalar()
                    if victim:
                        conn.execute(delete(o).where(o.c.source_id == victim))
        write(store, run_id, *models)
        night(store, cfg, run_id, as_of)


def test_a_config_without_incremental_builds_rebuild_in_full(store: Store) -> None:
    seed(store, n=12)
    cfg = PipelineConfig.model_validate(
        {
            **config().model_dump(mode="json", exclude={"path"}),
            "customer360": {"incremental": False},
        }
    )
    resolve_identities(store, cfg.identity, "night_1")
    build(store, cfg, START, "night_1")
    again = build(store, cfg, START + timedelta(days=1), "night_2")
    assert again.full_reason == "full rebuild asked for" and again.recomputed == 12
    incremental = build(store, config(), START + timedelta(days=2), "night_3")
    assert incremental.full_reason == "" and incremental.recomputed < 12


def test_daily_json_is_the_daily_figures_as_a_row_serialises_them(store: Store) -> None:
    """A night patches kept rows with ``daily_json``: it must equal the model's own dump."""
    cfg = config()
    seed(store)
    write(store, "night_1", customer(99, erp_receivable=Decimal("12.5")))
    write(store, "night_1", invoice("i99", 99, START - timedelta(days=3), "20.00", "20.00"))
    resolve_identities(store, cfg.identity, "night_1")
    accs: dict[str, Any] = {}
    with store.engine.connect() as conn:
        fx = fx_table(conn, cfg)
        figures = Figures(fx, BusinessCalendar(cfg.timezone), "EUR", START, None)
        collect(conn, accs, figures)
        aggregate(conn, accs, figures)
    pop = Population.of(accs, fx, cfg, START, figures.today)
    got = {gid: pop.daily_json(gid, a) for gid, a in accs.items()}
    want = {
        gid: Daily.model_construct(**pop.daily(gid, a)).model_dump(mode="json")
        for gid, a in accs.items()
    }
    assert got == want
    assert any(d["churn"] for d in got.values()), "the churn explanation is compared"
    assert any(d["erp_receivable_difference"] for d in got.values()), "and the receivable check"
