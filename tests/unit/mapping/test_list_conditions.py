"""``{each: <list>, any|all: <condition>}``: a condition over the items of a list (shipments
from a sales order's lines: shipped when any line has a shipped quantity)."""

from __future__ import annotations

from typing import Any

import pytest

from concord.errors import MappingError

from .helpers import mapping

HEAD = """\
direction: inbound
source: test
entity: shipments
id: id
fields:
  number: id
  order_id: id
  customer_id: customer
  status:
    when:
      - if: {each: Lines.Line, %s: {path: Shipped, gt: 0}}
        then: {const: shipped}
    else: {const: pending}
"""


def status(quantifier: str, lines: Any) -> str:
    record = {"id": "S-1", "customer": "C1", "Lines": {"Line": lines}}
    return str(mapping(HEAD % quantifier).apply(record)["status"])


@pytest.mark.parametrize(
    ("lines", "any_", "all_"),
    [
        ([{"Shipped": "0"}, {"Shipped": "2"}], "shipped", "pending"),
        ([{"Shipped": "1"}, {"Shipped": "2"}], "shipped", "shipped"),
        ([{"Shipped": "0"}], "pending", "pending"),
        ([{"Shipped": None}], "pending", "pending"),
        ([], "pending", "pending"),  # all of nothing is not true here
        (None, "pending", "pending"),
    ],
)
def test_any_and_all_over_the_lines(lines: Any, any_: str, all_: str) -> None:
    assert (status("any", lines), status("all", lines)) == (any_, all_)


def test_item_paths_read_the_item_and_dollar_paths_the_record() -> None:
    text = (HEAD % "any").replace("{path: Shipped, gt: 0}", "{path: $.customer, eq: C1}")
    record = {"id": "S-1", "customer": "C1", "Lines": {"Line": [{"Shipped": "0"}]}}
    assert mapping(text).apply(record)["status"] == "shipped"


def test_a_list_condition_with_two_quantifiers_is_refused_with_its_line() -> None:
    text = (HEAD % "any").replace("gt: 0}}", "gt: 0}, all: {path: Shipped, gt: 0}}")
    with pytest.raises(MappingError, match=r"list condition is \{each: <list path>, any") as err:
        mapping(text)
    assert str(err.value).startswith("test.yaml:11:")


def test_the_lines_read_by_a_list_condition_are_not_drift() -> None:
    m = mapping(HEAD % "any")
    record = {"id": "S-1", "customer": "C1", "Lines": {"Line": [{"Shipped": "1"}]}}
    assert m.unmapped_paths(record) == set()
