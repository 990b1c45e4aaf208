"""The push validates stored 360 rows into a projection: same properties as the full model."""

from __future__ import annotations

import textwrap
import typing
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, model_validator

from concord.mapping import Mapping, load_mapping, mapping_from_text
from concord.model import Customer360
from concord.push.diff import (
    PUSH_READS,
    MapFailure,
    Mapped,
    OutboundMappings,
    customer_model,
    map_customer,
)
from concord.push.projection import projection
from tests.conftest import REPO

CRM_MAPPINGS = sorted((REPO / "mappings" / "crm").glob("*.yaml"))
OUTBOUND = [p for p in CRM_MAPPINGS if not p.name.endswith(".tests.yaml")]
NOW = datetime(2026, 11, 1, 22, 0, tzinfo=UTC)


def rich_row(gid: str = "K-0001", **changes: Any) -> dict[str, Any]:
    """A stored 360 row (JSON mode) with every figure, list and nested model filled in."""
    src = f"sandbox_erp:customers:{gid}"
    row = Customer360.model_validate(
        {
            "concord_id": gid,
            "name": {"value": "Acme Maschinenbau GmbH", "source": src, "rule": "longest"},
            "email": {"value": "Info@Acme-Maschinenbau.de", "source": src},
            "phone": {"value": "+49 30 1234567", "source": src},
            "address": {"value": {"line": "Hauptstr. 1", "city": "Berlin"}, "source": src},
            "tax_id": {"value": "DE123456789", "source": src},
            "country": "DE",
            "source_ids": [src, "sandbox_nav:customers:10000"],
            "customer_numbers": [
                {"source": "sandbox_erp", "number": "C-00001", "record": src},
                {"source": "sandbox_nav", "number": "10000", "record": "sandbox_nav:10000"},
            ],
            "emails": ["info@acme-maschinenbau.de", "buchhaltung@acme-maschinenbau.de"],
            "phones": ["+49 30 1234567"],
            "as_of": date(2026, 11, 1),
            "timezone": "Europe/Berlin",
            "orders_count": 42,
            "lifetime_revenue": Decimal("153200.504321"),
            "revenue_12m": Decimal("23010.5"),
            "average_order_value": Decimal("3647.63"),
            "first_order_at": datetime(2019, 2, 3, 9, 0, tzinfo=UTC),
            "last_order_at": "2026-10-30T23:30:00+02:00",
            "days_since_last_order": 2,
            "open_orders": 3,
            "open_quotes": 1,
            "shipments_in_transit": 2,
            "shipments_late_90d": 1,
            "invoiced_total": Decimal("150000"),
            "paid_total": Decimal("140000.25"),
            "open_balance": Decimal("9999.995"),
            "overdue_balance": Decimal("1200"),
            "average_days_to_pay": 31.5,
            "unallocated_paid": Decimal("0.75"),
            "balance_gaps": [{"reason": "credit note without invoice", "amount": Decimal("0.75")}],
            "open_balance_basis": "mixed",
            "erp_receivable": Decimal("10000"),
            "erp_receivable_difference": Decimal("-0.005"),
            "fx": [
                {
                    "currency": "USD",
                    "source": "ecb",
                    "rates": ["2026-10-01: 1 USD = 0.92 EUR"],
                    "documents": 4,
                }
            ],
            "unconverted": {"CHF": 1},
            "rfm_recency": 5,
            "rfm_frequency": 5,
            "rfm_monetary": 4,
            "value_tier": "A",
            "lifecycle_stage": "active",
            "churn_risk": 0.123456,
            "p_alive": 0.876544,
            "churn": {
                "model": "mbg",
                "params": {"r": 0.2},
                "x": 41,
                "t_x": 300.5,
                "T": 400.0,
                "reason": "fit",
            },
            "updated_at": NOW,
            "content_hash": "abc",
        }
    ).model_dump(mode="json")
    row.update(changes)
    return row


def sample_rows() -> list[dict[str, Any]]:
    """Rich rows, sparse ones, persons, and every input of the bundled mapping test files."""
    rows = [
        rich_row(),
        rich_row("K-0002", is_person=True, name={"value": "Anna Maria Schmidt", "source": "x"}),
        rich_row(
            "K-0003",
            email={"value": "jo.hill@gmail.com", "source": "x"},
            churn_risk=None,
            customer_numbers=[],
            last_order_at=None,
            open_balance="0",
        ),
        rich_row(
            "K-0004",
            email=None,
            phone=None,
            country=None,
            churn=None,
            fx=[],
            value_tier="C",
            lifecycle_stage="prospect",
            is_person=True,
        ),
        {
            "concord_id": "K-0005",
            "name": {"value": "Solo", "source": "x"},
            "source_ids": ["x:customers:5"],
            "updated_at": "2026-11-01T00:00:00Z",
        },
    ]
    for path in CRM_MAPPINGS:
        if path.name.endswith(".tests.yaml"):
            rows += [case["input"] for case in yaml.safe_load(path.read_text())]
    return rows


def outbound(company: Mapping, person: Mapping | None = None) -> OutboundMappings:
    return OutboundMappings(company, person, b"", customer_model(company, person))


def full(company: Mapping, person: Mapping | None = None) -> OutboundMappings:
    return OutboundMappings(company, person, b"")


@pytest.mark.parametrize("path", OUTBOUND, ids=lambda p: p.name)
def test_bundled_mapping_properties_through_the_projection_equal_the_full_model(
    path: Path,
) -> None:
    m = load_mapping(path)
    for person in (None, load_mapping(REPO / "mappings/crm/hubspot_contact.yaml")):
        projected, whole = outbound(m, person), full(m, person)
        assert projected.model is not Customer360
        for i, row in enumerate(sample_rows()):
            got = map_customer(f"g{i}", row, projected, "t")
            want = map_customer(f"g{i}", row, whole, "t")
            assert isinstance(got, Mapped) and isinstance(want, Mapped)
            assert got == want


def test_projection_holds_what_the_push_reads_and_no_unread_figures() -> None:
    m = load_mapping(REPO / "mappings/crm/salesforce_account.yaml")
    model = customer_model(m)
    assert {p.split(".")[0] for p in PUSH_READS | m.read_paths} == set(model.model_fields)
    assert "balance_gaps" not in model.model_fields and "churn" not in model.model_fields
    row = rich_row(source_ids=["sandbox_erp:customers:K-0001", " sandbox_nav:customers:10000 "])
    mapped = map_customer("g", row, outbound(m), "t")
    assert isinstance(mapped, Mapped)
    assert mapped == map_customer("g", row, full(m), "t")
    assert mapped.name == "Acme Maschinenbau GmbH"
    # text is stripped as the full model strips it
    assert mapped.source_ids == ("sandbox_erp:customers:K-0001", "sandbox_nav:customers:10000")
    assert mapped.object_type == "company"


def test_projection_is_built_once_per_path_set() -> None:
    m = load_mapping(REPO / "mappings/crm/sandbox_crm.yaml")
    assert customer_model(m) is customer_model(m)


def mapping(text: str) -> Mapping:
    return mapping_from_text(Path("t.yaml"), textwrap.dedent(text))


def test_a_field_read_only_by_negate_if_is_in_the_projection() -> None:
    m = mapping("""\
        direction: outbound
        target: t
        fields:
          balance: {path: open_balance, negate_if: {path: open_balance_basis, eq: mixed}}
        """)
    model = customer_model(m)
    assert "open_balance_basis" in model.model_fields
    got = map_customer("g", rich_row(), outbound(m), "t")
    assert isinstance(got, Mapped)
    assert got.properties == {"balance": Decimal("-9999.995")}
    assert got == map_customer("g", rich_row(), full(m), "t")


def test_each_over_a_list_of_models_narrows_its_items() -> None:
    m = mapping("""\
        direction: outbound
        target: t
        fields:
          gaps: {each: balance_gaps, fields: {why: reason}}
          fx: {path: "fx[0].currency"}
        """)
    model = customer_model(m)
    (gap,) = typing.get_args(model.model_fields["balance_gaps"].annotation)
    assert set(gap.model_fields) == {"reason"}
    (fx,) = typing.get_args(model.model_fields["fx"].annotation)
    assert set(fx.model_fields) == {"currency"}
    row = rich_row()
    got, want = map_customer("g", row, outbound(m), "t"), map_customer("g", row, full(m), "t")
    assert isinstance(got, Mapped) and got == want
    assert got.properties == {"gaps": [{"why": "credit note without invoice"}], "fx": "USD"}


def test_a_whole_object_read_keeps_the_field_at_its_full_type() -> None:
    m = mapping("""\
        direction: outbound
        target: t
        fields:
          has_churn: {when: [{if: {path: churn, present: true}, then: {const: "y"}}]}
          address: address.value.city
        """)
    model = customer_model(m)
    assert model.model_fields["churn"].annotation == Customer360.model_fields["churn"].annotation
    row = rich_row()
    got, want = map_customer("g", row, outbound(m), "t"), map_customer("g", row, full(m), "t")
    assert isinstance(got, Mapped) and got == want
    assert got.properties == {"has_churn": "y", "address": "Berlin"}


def test_an_unknown_path_falls_back_to_the_full_model() -> None:
    assert projection(Customer360, frozenset({"name.value", "no_such_field"})) is Customer360


class Checked(BaseModel):
    a: int
    b: int = 0

    @model_validator(mode="after")
    def _b_follows_a(self) -> Checked:
        self.b = self.b or self.a
        return self


def test_a_model_with_its_own_validators_is_not_narrowed() -> None:
    assert projection(Checked, frozenset({"b"})) is Checked


def test_a_rejected_row_is_a_map_failure_through_the_projection() -> None:
    m = mapping("""\
        direction: outbound
        target: t
        fields:
          tier: {path: value_tier, map: {A: gold}}
        """)
    got = map_customer("g", rich_row(value_tier="B"), outbound(m), "t")
    assert isinstance(got, MapFailure)
    assert got.reject.field == "tier" and got.reject.source_id == "g"
