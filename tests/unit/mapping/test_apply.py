"""What a compiled mapping does to records: conversions, defaults, maps, lists and rejects."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from concord.errors import RecordRejected

from .helpers import mapping, order_mapping, order_record


def test_canonical_types_are_applied_without_naming_a_type() -> None:
    out = order_mapping().apply(order_record())
    assert out["net_total"] == Decimal("100.00")
    assert out["ordered_at"] == datetime(2025, 3, 1, 10, tzinfo=UTC)
    assert out["id"] == "SO-1" and out["status"] == "open"


def test_bad_date_rejects_naming_the_field() -> None:
    with pytest.raises(RecordRejected) as err:
        order_mapping().apply(order_record(order_date="31/02/2025"))
    assert err.value.field == "ordered_at"
    assert err.value.reason == (
        "orders.yaml field 'ordered_at': cannot parse '31/02/2025' as datetime"
    )


def test_missing_required_value_rejects_naming_the_field() -> None:
    record = order_record()
    del record["number"]
    with pytest.raises(RecordRejected) as err:
        order_mapping().apply(record)
    assert err.value.field == "number"
    assert "required value missing (path 'number')" in err.value.reason


def test_empty_string_counts_as_missing() -> None:
    with pytest.raises(RecordRejected) as err:
        order_mapping().apply(order_record(customer_id=""))
    assert err.value.field == "customer_id"


def test_nan_is_not_a_decimal() -> None:
    with pytest.raises(RecordRejected, match="cannot parse 'NaN' as decimal"):
        order_mapping().apply(order_record(net="NaN"))


def test_naive_timestamp_is_read_in_the_given_zone_and_stored_in_utc() -> None:
    m = order_mapping("updated_at: {path: changed, type: datetime, tz: Europe/Berlin}\n")
    out = m.apply(order_record(changed="2025-07-01T12:00:00"))
    assert out["updated_at"] == datetime(2025, 7, 1, 10, tzinfo=UTC)


def test_datetime_format_parses_day_first_dates() -> None:
    m = order_mapping("updated_at: {path: changed, type: datetime, format: '%d.%m.%Y %H:%M'}\n")
    out = m.apply(order_record(changed="05.03.2025 14:30"))
    assert out["updated_at"] == datetime(2025, 3, 5, 14, 30, tzinfo=UTC)


def test_epoch_milliseconds_are_accepted() -> None:
    m = order_mapping("updated_at: {path: changed, type: datetime, format: epoch_ms}\n")
    out = m.apply(order_record(changed=1735689600000))
    assert out["updated_at"] == datetime(2025, 1, 1, tzinfo=UTC)


def test_date_only_value_becomes_midnight_utc() -> None:
    out = order_mapping().apply(order_record(order_date="2025-03-01"))
    assert out["ordered_at"] == datetime(2025, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Y", True),
        ("n", False),
        ("yes", True),
        ("NO", False),
        ("1", True),
        (0, False),
        ("true", True),
        (False, False),
    ],
)
def test_bool_accepts_the_usual_spellings(raw: object, expected: bool) -> None:
    m = mapping("""\
        direction: inbound
        entity: customers
        id: id
        fields:
          name: company
          is_person: {path: person, type: bool}
    """)
    assert m.apply({"id": "1", "company": "X", "person": raw})["is_person"] is expected


def test_bool_rejects_anything_else() -> None:
    m = mapping("""\
        direction: inbound
        entity: customers
        id: id
        fields:
          name: company
          is_person: person
    """)
    with pytest.raises(RecordRejected, match="cannot parse 'maybe' as bool"):
        m.apply({"id": "1", "company": "X", "person": "maybe"})


def test_coalesce_takes_the_first_non_empty_value() -> None:
    m = order_mapping("""\
        tax_total:
          coalesce: [tax, vat, {const: "0"}]
    """)
    assert m.apply(order_record(tax="", vat="7.5"))["tax_total"] == Decimal("7.5")
    assert m.apply(order_record())["tax_total"] == Decimal("0")


def test_concat_joins_non_empty_parts_with_sep() -> None:
    m = order_mapping("number: {concat: [prefix, number], sep: '-'}\n", skip=("number",))
    assert m.apply(order_record(prefix="EU"))["number"] == "EU-SO-1"
    assert m.apply(order_record())["number"] == "SO-1"


def test_map_otherwise_replaces_unknown_values() -> None:
    m = order_mapping(
        "status: {path: state, map: {done: closed}, otherwise: open}\n", skip=("status",)
    )
    assert m.apply(order_record(state="done"))["status"] == "closed"
    assert m.apply(order_record(state="weird"))["status"] == "open"


def test_transforms_run_before_the_map() -> None:
    m = order_mapping(
        "status: {path: state, transform: [trim, lower], map: {done: closed}}\n", skip=("status",)
    )
    assert m.apply(order_record(state=" DONE "))["status"] == "closed"


def test_currency_is_upper_cased_and_checked() -> None:
    m = order_mapping()
    assert m.apply(order_record(currency="eur"))["currency"] == "EUR"
    with pytest.raises(RecordRejected, match="'XYZ' is not an ISO 4217 currency code"):
        m.apply(order_record(currency="XYZ"))


def test_list_index_path_reads_one_item() -> None:
    m = order_mapping("""\
        lines:
          each: items
          fields: {quantity: qty, unit_price: price, sku: "$.number"}
        updated_at: "history[-1].at"
    """)
    out = m.apply(
        order_record(
            items=[{"qty": "2", "price": "1.5"}],
            history=[{"at": "2025-01-01T00:00:00Z"}, {"at": "2025-02-01T00:00:00Z"}],
        )
    )
    assert out["lines"] == [{"quantity": Decimal(2), "unit_price": Decimal("1.5"), "sku": "SO-1"}]
    assert out["updated_at"] == datetime(2025, 2, 1, tzinfo=UTC)


def test_each_over_a_non_list_rejects() -> None:
    m = order_mapping("lines: {each: items, fields: {quantity: qty, unit_price: price}}\n")
    with pytest.raises(RecordRejected, match="expected a list at 'items'") as err:
        m.apply(order_record(items={"qty": 1}))
    assert err.value.field == "lines"


def test_missing_line_quantity_rejects_naming_the_item() -> None:
    m = order_mapping("lines: {each: items, fields: {quantity: qty, unit_price: price}}\n")
    with pytest.raises(RecordRejected, match=r"field 'lines.quantity' \(item 2\)") as err:
        m.apply(order_record(items=[{"qty": 1, "price": 1}, {"price": 1}]))
    assert err.value.field == "lines.quantity"


def test_negate_if_flips_the_sign_when_the_condition_holds() -> None:
    m = order_mapping(
        "gross_total: {path: gross, negate_if: {path: kind, in: [credit]}}\n", skip=("gross_total",)
    )
    assert m.apply(order_record(kind="credit"))["gross_total"] == Decimal("-119.00")
    assert m.apply(order_record(kind="invoice"))["gross_total"] == Decimal("119.00")


def test_empty_value_of_a_defaulted_field_is_left_to_the_model() -> None:
    out = order_mapping("tax_total: tax\n").apply(order_record())
    assert "tax_total" not in out


def test_as_list_wraps_a_value_and_drops_empty_ones() -> None:
    m = mapping("""\
        direction: inbound
        entity: customers
        id: id
        fields:
          name: company
          emails: {path: email, as: list}
    """)
    assert m.apply({"id": "1", "company": "X", "email": "a@b.c"})["emails"] == ["a@b.c"]
    assert m.apply({"id": "1", "company": "X", "email": None})["emails"] == []


def test_non_dict_record_is_rejected() -> None:
    with pytest.raises(RecordRejected, match="not an object"):
        order_mapping().apply(["not", "a", "dict"])  # type: ignore[arg-type]


def test_read_and_unmapped_paths_report_schema_drift() -> None:
    m = order_mapping("lines: {each: items, fields: {quantity: qty, unit_price: price}}\n")
    assert {"number", "items", "items.qty", "items.price"} <= m.read_paths
    record = order_record(
        items=[{"qty": 1, "price": 2, "discount": 0}], channel="web", meta={"source": "api"}
    )
    assert m.unmapped_paths(record) == {"items.discount", "channel", "meta.source"}


def test_generated_source_contains_no_user_text() -> None:
    m = order_mapping("number: {const: \"__import__('os')\"}\n", skip=("number",))
    assert "__import__" not in m.python_source
    assert "order_date" not in m.python_source
    assert m.apply(order_record())["number"] == "__import__('os')"


def test_tryton_encoded_decimals_and_datetimes_are_read() -> None:
    out = order_mapping().apply(
        order_record(
            net={"__class__": "Decimal", "decimal": "10.50"},
            order_date={"__class__": "datetime", "year": 2025, "month": 3, "day": 1, "hour": 9},
        )
    )
    assert out["net_total"] == Decimal("10.50")
    assert out["ordered_at"] == datetime(2025, 3, 1, 9, tzinfo=UTC)


def test_record_ids_that_are_numbers_become_text() -> None:
    assert order_mapping().apply(order_record(id=42))["id"] == "42"
