"""infer_mapping drafts a mapping from samples that loads and maps those samples."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

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
    assert "# source paths not mapped: channel" in text


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
