"""Customer 360 metrics, survivorship and explain on small hand-built data in a real store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from rich.console import Console

from concord.cli.render import render_customer, render_explanation
from concord.config import PipelineConfig
from concord.customer360.churn import MbgParams
from concord.customer360.lookup import find_customers
from concord.customer360.stored import whole_rows
from concord.identity.explain import explain
from concord.model import Invoice, Payment, Shipment, SourceRef
from concord.pipeline.build_360 import build as build_360_rows
from concord.pipeline.resolve import resolve_identities as resolve
from concord.store import Store
from tests.integration.identity.builders import customer, order, write
from tests.unit.customer360.simulation import simulate

AS_OF = datetime(2026, 11, 1, tzinfo=UTC)


def day(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, tzinfo=UTC)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = Store.open(store_url)
    yield s
    s.dispose()


def pipeline_config(**identity: Any) -> PipelineConfig:
    rules = ["crossref", "tax_id", "email", {"name": "fuzzy_name", "threshold": 90}]
    return PipelineConfig.model_validate(
        {
            "sources": {},
            "base_currency": "EUR",
            "fx_rates": {"USD": "0.92"},
            "identity": {"rules": rules, **identity},
        }
    )


def seed(store: Store) -> None:
    write(
        store,
        customer(
            "erp_a",
            "1",
            "Acme GmbH",
            email="buy@acme.de",
            country="DE",
            postcode="10115",
            city="Berlin",
            updated_at=day(2026, 3, 1),
        ),
        customer(
            "erp_b",
            "1",
            "ACME Corporation GmbH",
            email="buy@acme.de",
            phone="+49 30 1234567",
            country="DE",
            addresses=[{"line": "Hauptstr. 1", "city": "Berlin", "postcode": "10115"}],
            updated_at=day(2026, 1, 1),
        ),
        customer("erp_a", "2", "Tiny Shop", email="tiny@shop.fr", country="FR"),
        order("erp_a", "o1", "1", day(2026, 10, 1), "100.00"),
        order("erp_b", "o2", "1", day(2026, 6, 1), "100.00", currency="USD", status="shipped"),
        order("erp_a", "o3", "1", day(2026, 10, 15), "500.00", status="cancelled"),
        order("erp_a", "o4", "1", day(2026, 10, 20), "10.00", status="open"),
        order("erp_a", "o5", "2", day(2025, 1, 1), "5.00"),
        Invoice(
            ref=SourceRef(system="erp_a", entity="invoices", id="i1"),
            number="i1",
            customer_id="1",
            issued_at=day(2026, 9, 1),
            due_at=day(2026, 10, 1),
            currency="EUR",
            total=Decimal(100),
            open_amount=Decimal(40),
            status="posted",
        ),
        Invoice(
            ref=SourceRef(system="erp_a", entity="invoices", id="i2"),
            number="i2",
            customer_id="1",
            issued_at=day(2026, 10, 20),
            due_at=day(2026, 11, 20),
            currency="EUR",
            total=Decimal(50),
            open_amount=Decimal(50),
            status="posted",
        ),
        Payment(
            ref=SourceRef(system="erp_a", entity="payments", id="p1"),
            reference="p1",
            customer_id="1",
            invoice_id="i1",
            paid_at=day(2026, 9, 11),
            currency="EUR",
            amount=Decimal(60),
            status="completed",
        ),
        Shipment(
            ref=SourceRef(system="erp_a", entity="shipments", id="s1"),
            number="s1",
            customer_id="1",
            status="shipped",
            shipped_at=day(2026, 10, 28),
            promised_at=day(2026, 11, 5),
        ),
        Shipment(
            ref=SourceRef(system="erp_b", entity="shipments", id="s2"),
            number="s2",
            customer_id="1",
            status="delivered",
            shipped_at=day(2026, 9, 25),
            promised_at=day(2026, 10, 1),
            delivered_at=day(2026, 10, 5),
        ),
    )


def rows(store: Store) -> dict[str, dict[str, Any]]:
    with store.engine.connect() as conn:
        return {d["source_ids"][0]: d for d in whole_rows(conn)}


def test_each_360_metric_on_hand_built_data(store: Store) -> None:
    seed(store)
    cfg = pipeline_config()
    resolve(store, cfg.identity, "run_1")
    report = build_360_rows(store, cfg, AS_OF, "run_1")
    assert report.customers == 2
    assert report.churn_model == "recency_heuristic"
    acme = rows(store)["erp_a:1"]
    assert acme["source_ids"] == ["erp_a:1", "erp_b:1"]
    assert acme["orders_count"] == 2  # the cancelled order and the open (unreleased) one not
    assert Decimal(acme["lifetime_revenue"]) == Decimal("192.00")  # 100 + 92 (USD)
    assert Decimal(acme["open_balance"]) == Decimal("90.00")
    assert Decimal(acme["overdue_balance"]) == Decimal("40.00")
    assert Decimal(acme["paid_total"]) == Decimal("60.00")
    assert acme["average_days_to_pay"] == 10.0
    assert acme["shipments_in_transit"] == 1
    assert acme["shipments_late_90d"] == 1
    assert acme["open_orders"] == 2  # open and confirmed, not yet shipped
    assert acme["value_tier"] == "A"
    assert acme["lifecycle_stage"] == "active"
    assert acme["rfm_recency"] == 5 and acme["rfm_monetary"] == 5
    assert 0.0 <= acme["churn_risk"] < 0.5
    tiny = rows(store)["erp_a:2"]
    assert tiny["value_tier"] == "C"
    assert tiny["lifecycle_stage"] == "lapsed"
    assert tiny["rfm_recency"] == 1
    assert acme["churn_risk"] < tiny["churn_risk"]


def test_survivorship_follows_the_configured_strategy_per_field(store: Store) -> None:
    seed(store)
    cfg = pipeline_config(
        survivorship={
            "default": "most_recent",
            "fields": {
                "name": {"strategy": "source_priority", "sources": ["erp_b", "erp_a"]},
                "address": "most_complete",
            },
        }
    )
    resolve(store, cfg.identity, "run_1")
    build_360_rows(store, cfg, AS_OF, "run_1")
    acme = rows(store)["erp_a:1"]
    assert (acme["name"]["value"], acme["name"]["source"]) == ("ACME Corporation GmbH", "erp_b:1")
    assert acme["address"]["source"] == "erp_b:1"
    assert acme["address"]["value"]["line"] == "Hauptstr. 1"
    assert acme["email"]["source"] == "erp_a:1"  # most recent record
    assert (acme["phone"]["value"], acme["phone"]["source"]) == ("+49 30 1234567", "erp_b:1")


def test_unchanged_rows_are_not_rewritten(store: Store) -> None:
    seed(store)
    cfg = pipeline_config()
    resolve(store, cfg.identity, "run_1")
    build_360_rows(store, cfg, AS_OF, "run_1")
    again = build_360_rows(store, cfg, AS_OF, "run_2")
    assert again.written == 0 and again.unchanged == 2


def test_explain_names_the_rule_and_show_prints_links(store: Store) -> None:
    seed(store)
    cfg = pipeline_config()
    resolve(store, cfg.identity, "run_1")
    build_360_rows(store, cfg, AS_OF, "run_1")
    ex = explain(store, cfg, "erp_a:1", "erp_b:1")
    assert ex.same
    assert [s.rule for s in ex.path] == ["email"]
    assert {c.rule: c.fires for c in ex.checks}["email"] is True
    apart = explain(store, cfg, "erp_a:1", "erp_a:2")
    assert not apart.same
    assert apart.verdict == "different customers: no rule links them"
    by_id = explain(store, cfg, ex.a_id or "", "erp_a:2")
    assert by_id.a_record == "erp_a:1"
    console = Console(record=True, width=160)
    render_explanation(console, ex)
    [view] = find_customers(store, "erp_b:1")
    render_customer(console, view)
    text = console.export_text()
    assert "email" in text and "erp_b:1" in text and "churn_risk" in text


def test_mbgnbd_is_used_once_the_base_has_enough_repeat_buyers(store: Store) -> None:
    models: list[Any] = []
    histories = simulate(MbgParams(0.5, 6.0, 0.6, 3.0), 300, 52.0, seed=3)
    for i, h in enumerate(histories):
        models.append(customer("erp_a", f"c{i}", f"Company {i:03d}", email=f"x{i}@c{i}.de"))
        first = AS_OF - timedelta(weeks=h.T)
        times = [0.0, *sorted({round(h.t_x * k / max(h.x, 1), 3) for k in range(1, h.x + 1)})]
        for k, t_k in enumerate(times):
            models.append(order("erp_a", f"o{i}-{k}", f"c{i}", first + timedelta(weeks=t_k), "10"))
    write(store, *models)
    cfg = pipeline_config(churn={"min_repeat_customers": 20})
    resolve(store, cfg.identity, "run_1")
    report = build_360_rows(store, cfg, AS_OF, "run_1")
    assert report.churn_model == "mbgnbd", report.churn_reason
    assert report.churn_params is not None and set(report.churn_params) == {"r", "alpha", "a", "b"}
    risks = [r["churn_risk"] for r in rows(store).values()]
    assert all(0.0 <= r <= 1.0 for r in risks)
