"""Schema drift: new source fields are counted as unmapped, vanished mapped fields as missing."""

from __future__ import annotations

from pathlib import Path

from concord.mapping import load_mapping

ORDERS = Path(__file__).resolve().parents[3] / "mappings" / "sandbox_erp" / "orders.yaml"
RECORD = {
    "id": "SO-1",
    "number": "SO-1",
    "customer_id": "C-1",
    "order_date": "2026-01-01",
    "state": "open",
    "currency": "EUR",
    "amount_untaxed": "1",
    "amount_tax": "0",
    "amount_total": "1",
    "updated_at": "2026-01-01T00:00:00Z",
    "lines": [{"sku": "A", "name": "a", "qty": 1, "unit_price": "1"}],
}


def test_a_complete_record_has_no_drift() -> None:
    m = load_mapping(ORDERS)
    assert m.missing_paths(RECORD) == set()
    assert m.unmapped_paths(RECORD) == set()


def test_a_vanished_line_field_is_missing_even_after_a_cached_shape() -> None:
    m = load_mapping(ORDERS)
    m.missing_paths(RECORD)
    changed = {**RECORD, "lines": [{"sku": "A", "name": "a", "unit_price": "1"}]}
    assert m.missing_paths(changed) == {"lines.qty"}
    assert m.missing_paths(RECORD) == set()


def test_null_is_present_and_new_fields_are_unmapped() -> None:
    m = load_mapping(ORDERS)
    record = {**RECORD, "amount_tax": None, "channel": "web"}
    assert m.missing_paths(record) == set()
    assert m.unmapped_paths(record) == {"channel"}
