"""infer_mapping drafts a mapping from samples that loads and maps those samples."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from concord.errors import MappingError
from concord.mapping import mapping_from_text
from concord.mapping.infer import infer_mapping

ORDER = {
    "id": "SO-1",
    "number": "SO-000001",
    "customer_id": "C-00001",
    "order_date": "2025-03-01T10:00:00Z",
    "state": "done",
    "currency": "EUR",
    "amount_untaxed": "100.00",
    "amount_tax": "19.00",
    "amount_total": "119.00",
    "lines": [{"sku": "A", "name": "Widget", "qty": 2, "unit_price": "50.00"}],
    "updated_at": "2025-03-02T00:00:00Z",
    "channel": "web",
}


def test_inferred_orders_mapping_loads_and_maps_the_sample() -> None:
    text = infer_mapping([ORDER, {**ORDER, "id": "SO-2", "state": "cancel"}], "orders")
    mapping = mapping_from_text(Path("draft.yaml"), text)
    out = mapping.apply(ORDER)
    assert out["status"] == "closed" and out["lines"][0]["description"] == "Widget"
    assert "done: closed    # guessed" in text
    assert "# source paths not mapped:\n#   channel" in text


def test_inferred_customer_maps_address_object_and_guesses_date_format() -> None:
    sample = {
        "id": "C-1",
        "company": "Acme",
        "email": "a@acme.de",
        "billing_address": {"street": "Hauptstr 1", "city": "Berlin", "zip": "10115"},
        "updated_at": "31.12.2024",
    }
    text = infer_mapping(sample, "customers")
    out = mapping_from_text(Path("draft.yaml"), text).apply(sample)
    assert out["addresses"] == [{"line": "Hauptstr 1", "city": "Berlin", "postcode": "10115"}]
    assert out["updated_at"] == datetime(2024, 12, 31, tzinfo=UTC)


def test_required_field_without_a_match_is_left_as_a_comment_that_fails_the_load() -> None:
    text = infer_mapping({"id": "P-1", "amount": "5"}, "payments")
    assert "# reference: ???" in text
    with pytest.raises(MappingError, match="required field 'reference'"):
        mapping_from_text(Path("draft.yaml"), text)


def test_unknown_entity_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown entity"):
        infer_mapping({}, "widgets")


def _samples(kind: str) -> list[dict[str, Any]]:
    """Customer records as three different ERPs send them (the sandboxes' own data)."""
    if kind == "rest":
        from sandbox.erp_data import ErpDataset

        return list(ErpDataset.generate(seed=7, customers=20).iter_all("customers"))[2:8]
    if kind == "nav":
        from sandbox.nav_data import NavDataset

        return NavDataset.generate(seed=7, customers=20).pages["Customer"][:6]
    from sandbox.business_central import BusinessCentralData

    return list(BusinessCentralData.generate().records["customers"].values())[:6]


@pytest.mark.parametrize("kind", ["rest", "nav", "business_central"])
def test_an_inferred_customer_draft_validates_and_maps_its_samples(
    kind: str, tmp_path: Path
) -> None:
    from concord.mapping import load_mapping
    from concord.model import Customer

    records = _samples(kind)
    path = tmp_path / "customers.yaml"
    path.write_text(infer_mapping(records, "customers", source=kind))
    mapping = load_mapping(path)  # the draft the loader accepts as it is
    for record in records:
        out = mapping.apply(record)
        out.pop("id", None)
        customer = Customer.model_validate(
            {**out, "ref": {"system": kind, "entity": "customers", "id": "x"}}
        )
        assert customer.name
        assert customer.addresses and (customer.addresses[0].city or "")
        assert customer.addresses[0].postcode
    assert mapping.spec.id is not None and mapping.spec.id.path is not None
    assert mapping.spec.id.path.text in records[0]  # the id it reads exists in the records
