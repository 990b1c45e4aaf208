"""One walker names every source path a mapping reads: conditions, ``negate_if``, ``each`` parts."""

from __future__ import annotations

import pytest

from concord.errors import MappingError
from concord.mapping.paths import rounded_reads, spec_reads
from tests.unit.mapping.helpers import mapping, order_mapping


def test_negate_if_condition_path_is_a_source_path_of_its_field() -> None:
    m = order_mapping(
        "gross_total: {path: gross, negate_if: {path: kind, in: [credit]}}\n", skip=("gross_total",)
    )
    assert m.source_paths("gross_total") == ["gross", "kind"]
    assert "kind" in m.read_paths
    assert "kind" in m.value_paths


def test_every_expression_part_is_walked_with_full_paths() -> None:
    m = mapping("""\
        direction: outbound
        target: crm
        fields:
          a: {coalesce: [email.value, {concat: [phone.value, country], sep: " "}]}
          b:
            when:
              - if: {any: [{path: is_person, eq: true}, {not: {path: tax_id.value, present: true}}]}
                then: name.value
            else: {const: x}
          c: {object: {d: timezone}}
          e:
            each: customer_numbers
            filter: {path: source, eq: erp}
            fields:
              n: number
              r: $.concord_id
          f: {path: lifetime_revenue, negate_if: {each: balance_gaps, any: {path: reason, eq: x}}}
        """)
    assert m.read_paths == {
        "email.value",
        "phone.value",
        "country",
        "is_person",
        "tax_id.value",
        "name.value",
        "timezone",
        "customer_numbers",
        "customer_numbers.source",
        "customer_numbers.number",
        "concord_id",
        "lifetime_revenue",
        "balance_gaps",
        "balance_gaps.reason",
    }
    assert m.read_paths - m.value_paths == {"customer_numbers", "balance_gaps"}
    nested = {r.dotted for r in spec_reads(m.spec) if r.nested}
    assert nested == {"customer_numbers.source", "customer_numbers.number", "balance_gaps.reason"}
    assert m.source_paths("f") == ["balance_gaps", "balance_gaps.reason", "lifetime_revenue"]


def test_inbound_id_expression_is_read() -> None:
    m = order_mapping()
    assert "id" in m.read_paths


def test_outbound_checks_see_a_root_path_in_an_each_filter() -> None:
    with pytest.raises(MappingError, match="no_such_field"):
        mapping("""\
            direction: outbound
            target: crm
            fields:
              e:
                each: customer_numbers
                filter: {path: $.no_such_field, eq: x}
                fields: {n: number}
            """)


def test_a_field_read_only_rounded_is_named_with_its_places() -> None:
    m = mapping("""\
        direction: outbound
        target: crm
        fields:
          risk: {path: churn_risk, round: 2}
          revenue: {path: lifetime_revenue, round: 0}
          balance: {path: open_balance, round: 2}
          balance_text: {concat: [open_balance, base_currency], sep: " "}
          alive: {path: p_alive, round: 2, negate_if: {path: is_person, eq: true}}
          tier: value_tier
        """)
    # open_balance is read raw too; p_alive has a step beside round; value_tier is not rounded
    assert rounded_reads(m.spec) == {"churn_risk": 2, "lifetime_revenue": 0}


def test_a_field_rounded_to_two_different_places_is_not_named() -> None:
    m = mapping("""\
        direction: outbound
        target: crm
        fields:
          risk: {path: churn_risk, round: 2}
          risk_fine: {path: churn_risk, round: 4}
        """)
    assert rounded_reads(m.spec) == {}
