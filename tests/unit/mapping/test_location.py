"""A reject names the mapping file and the line of the field that refused the record."""

from __future__ import annotations

from concord.mapping import Mapping
from tests.unit.mapping.helpers import order_mapping

LINES = """\
lines:
  each: items
  fields:
    quantity: qty
    unit_price: price
"""


def orders() -> Mapping:
    return order_mapping(LINES)  # head and fields: lines 1-12, then ``lines`` from line 13


def test_a_field_is_located_at_its_own_line() -> None:
    m = orders()
    assert m.location("number") == "orders.yaml:6"
    assert m.location("lines") == "orders.yaml:13"


def test_a_path_below_a_field_names_the_deepest_field_the_mapping_writes() -> None:
    m = orders()
    assert m.location("lines.quantity") == "orders.yaml:16"
    assert m.location("lines.3.quantity") == "orders.yaml:16"  # list indexes are skipped
    assert m.location("lines.3.sku") == "orders.yaml:13"  # not written: its list's line


def test_a_field_the_mapping_does_not_write_names_the_file() -> None:
    m = orders()
    assert m.location("colour") == "orders.yaml"
    assert m.location(None) == "orders.yaml"
