"""The richer functions: lookup tables, extract, split/join, when, on_missing, each filter."""

from __future__ import annotations

import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

from concord.errors import MappingError, RecordRejected
from concord.mapping import load_mapping

from .helpers import mapping, order_mapping, order_record

CUSTOMER_HEAD = """\
direction: inbound
entity: customers
id: id
"""


def customers(fields: str, tables: str = "") -> str:
    return (
        CUSTOMER_HEAD
        + tables
        + "fields:\n  name: company\n"
        + textwrap.indent(textwrap.dedent(fields), "  ")
    )


def test_inline_lookup_table_translates_values() -> None:
    m = mapping(
        customers(
            "country: {path: land, lookup: countries}\n",
            "tables:\n  countries: {Deutschland: DE, Frankreich: FR}\n",
        )
    )
    assert m.apply({"id": "1", "company": "X", "land": "Deutschland"})["country"] == "DE"
    with pytest.raises(RecordRejected, match="'Spanien' is not in lookup table 'countries'"):
        m.apply({"id": "1", "company": "X", "land": "Spanien"})


def test_csv_lookup_table_is_read_from_under_mappings(tmp_path: Path) -> None:
    root = tmp_path / "mappings" / "erp"
    root.mkdir(parents=True)
    (tmp_path / "mappings" / "countries.csv").write_text("name,code\nGermany,DE\nFrance,FR\n")
    file = root / "customers.yaml"
    file.write_text(
        customers(
            "country: {path: land, lookup: countries, otherwise: null}\n",
            "tables:\n  countries: {csv: ../countries.csv, key: name, value: code}\n",
        )
    )
    m = load_mapping(file)
    assert m.apply({"id": "1", "company": "X", "land": "France"})["country"] == "FR"
    assert m.apply({"id": "1", "company": "X", "land": "Peru"})["country"] is None


def test_csv_lookup_table_outside_mappings_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "mappings"
    root.mkdir()
    (tmp_path / "secret.csv").write_text("a,b\n1,2\n")
    file = root / "customers.yaml"
    file.write_text(
        customers(
            "country: {path: land, lookup: t}\n",
            "tables:\n  t: {csv: ../secret.csv, key: a, value: b}\n",
        )
    )
    with pytest.raises(MappingError, match="must be a file under"):
        load_mapping(file)


def test_unknown_lookup_table_is_refused_at_load() -> None:
    with pytest.raises(MappingError, match="unknown lookup table 'nope'"):
        mapping(customers("country: {path: land, lookup: nope}\n"))


def test_lookup_values_are_checked_at_load() -> None:
    with pytest.raises(MappingError, match="not an ISO 3166"):
        mapping(customers("country: {path: land, lookup: t}\n", "tables:\n  t: {a: Germany}\n"))


def test_extract_takes_the_first_group_of_a_regex() -> None:
    m = mapping(customers("tax_id: {path: note, extract: 'VAT[: ]*([A-Z]{2}\\d+)'}\n"))
    assert m.apply({"id": "1", "company": "X", "note": "VAT: DE123"})["tax_id"] == "DE123"
    assert m.apply({"id": "1", "company": "X", "note": "none"})["tax_id"] is None


def test_split_makes_a_list_and_transforms_each_item() -> None:
    m = mapping(customers("emails: {path: mails, split: ',', transform: [lower]}\n"))
    out = m.apply({"id": "1", "company": "X", "mails": "A@x.de, b@Y.de,,"})
    assert out["emails"] == ["a@x.de", "b@y.de"]


def test_join_makes_text_from_a_list() -> None:
    m = mapping(customers("legal_name: {path: 'names[*]', join: ' / '}\n"))
    assert m.apply({"id": "1", "company": "X", "names": ["A", "B"]})["legal_name"] == "A / B"


def test_wildcard_path_collects_every_item() -> None:
    m = mapping(customers("phones: 'contacts[*].phone'\n"))
    record = {"id": "1", "company": "X", "contacts": [{"phone": "1"}, {"fax": "2"}, {"phone": "3"}]}
    assert m.apply(record)["phones"] == ["1", "3"]


def test_when_picks_the_first_matching_case() -> None:
    m = order_mapping(
        """\
        status:
          when:
            - if: {path: cancelled, eq: true}
              then: {const: cancelled}
            - if: {all: [{path: shipped_qty, gt: 0}, {path: open_qty, le: 0}]}
              then: {const: shipped}
          else: state
    """,
        skip=("status",),
    )
    assert m.apply(order_record(cancelled=True))["status"] == "cancelled"
    assert m.apply(order_record(shipped_qty="3", open_qty=0))["status"] == "shipped"
    assert m.apply(order_record(shipped_qty="3", open_qty=1))["status"] == "open"


def test_condition_matches_and_not() -> None:
    m = order_mapping(
        """\
        gross_total:
          path: gross
          negate_if: {not: {path: number, matches: '^SO-'}}
    """,
        skip=("gross_total",),
    )
    assert m.apply(order_record())["gross_total"] == Decimal("119.00")
    assert m.apply(order_record(number="CN-1"))["gross_total"] == Decimal("-119.00")


def test_on_missing_reject_catches_a_dropped_source_field() -> None:
    m = order_mapping("tax_total: {path: tax, on_missing: reject}\n")
    assert m.apply(order_record(tax=None)).get("tax_total") is None
    record = order_record()
    with pytest.raises(RecordRejected, match="source path 'tax' is missing") as err:
        m.apply(record)
    assert err.value.field == "tax_total"


def test_file_level_on_missing_reject_applies_to_every_path() -> None:
    text = "on_missing: reject\n" + customers("legal_name: {path: legal, on_missing: default}\n")
    m = mapping(text)
    assert m.apply({"id": "1", "company": "X"})["legal_name"] is None
    with pytest.raises(RecordRejected, match="source path 'company' is missing"):
        m.apply({"id": "1"})


def test_each_filter_skips_items() -> None:
    m = order_mapping("""\
        lines:
          each: items
          filter: {path: kind, ne: note}
          fields: {quantity: qty, unit_price: price}
    """)
    out = m.apply(order_record(items=[{"qty": 1, "price": 2}, {"kind": "note"}]))
    assert out["lines"] == [{"quantity": Decimal(1), "unit_price": Decimal(2)}]


def test_round_is_half_up() -> None:
    m = order_mapping("tax_total: {path: tax, round: 2}\n")
    assert m.apply(order_record(tax="0.125"))["tax_total"] == Decimal("0.13")


def test_outbound_stringify_writes_every_value_as_text() -> None:
    m = mapping("""\
        direction: outbound
        target: crm
        stringify: true
        fields:
          revenue: lifetime_revenue
          person: is_person
          ids: source_ids
          tier: value_tier
    """)
    out = m.apply(
        {
            "lifetime_revenue": Decimal("12.50"),
            "is_person": False,
            "source_ids": ["a", "b"],
            "value_tier": "A",
        }
    )
    assert out == {"revenue": "12.50", "person": "false", "ids": "a;b", "tier": "A"}
