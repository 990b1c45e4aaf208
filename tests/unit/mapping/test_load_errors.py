"""A broken mapping file fails at load with a MappingError naming file, line, column and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from concord.errors import MappingError
from concord.mapping import load_mapping

from .helpers import mapping, order_mapping


def test_unknown_key_names_line_column_and_field() -> None:
    with pytest.raises(MappingError) as err:
        order_mapping("""\
            tax_total: {path: tax, typo: 1}
        """)
    assert (err.value.file, err.value.line, err.value.field) == ("orders.yaml", 13, "tax_total")
    assert err.value.column == 26
    assert "unknown key 'typo'" in str(err.value)
    assert str(err.value).startswith("orders.yaml:13:26 field 'tax_total':")


def test_output_field_missing_from_the_model_is_refused() -> None:
    with pytest.raises(MappingError, match="Order has no field 'totl'") as err:
        order_mapping("totl: gross\n")
    assert err.value.field == "totl" and err.value.line == 13


def test_required_canonical_field_not_mapped_is_refused() -> None:
    with pytest.raises(MappingError, match="required field 'gross_total' of Order") as err:
        order_mapping(skip=("gross_total",))
    assert err.value.field == "gross_total"


def test_bool_into_a_decimal_field_is_a_type_clash() -> None:
    with pytest.raises(MappingError, match="type: bool does not fit 'tax_total'") as err:
        order_mapping("tax_total: {path: tax, type: bool}\n")
    assert err.value.line == 13


def test_unknown_transform_is_refused() -> None:
    with pytest.raises(MappingError, match="unknown transform 'shout'"):
        order_mapping("number: {path: number, transform: [trim, shout]}\n", skip=("number",))


def test_unknown_type_is_refused() -> None:
    with pytest.raises(MappingError, match="unknown type 'money'"):
        order_mapping("tax_total: {path: tax, type: money}\n")


def test_enum_map_value_outside_the_enum_is_refused_at_load() -> None:
    with pytest.raises(MappingError, match="'finished' is not one of") as err:
        order_mapping("status: {path: state, map: {done: finished}}\n", skip=("status",))
    assert err.value.field == "status"


def test_default_that_does_not_convert_is_refused_at_load() -> None:
    with pytest.raises(MappingError, match="default: cannot parse 'zero' as decimal"):
        order_mapping("tax_total: {path: tax, default: zero}\n")


def test_unknown_entity_is_refused() -> None:
    with pytest.raises(MappingError, match="unknown entity 'order'") as err:
        mapping("direction: inbound\nentity: order\nid: id\nfields: {}\n")
    assert err.value.line == 2


def test_inbound_mapping_needs_an_id() -> None:
    with pytest.raises(MappingError, match="missing 'id'"):
        mapping("direction: inbound\nentity: payments\nfields: {}\n")


def test_bare_non_string_value_must_be_written_as_const() -> None:
    with pytest.raises(MappingError, match=r"write \{const: true\}"):
        mapping("""\
            direction: inbound
            entity: customers
            id: id
            fields:
              name: company
              is_person: true
        """)


def test_bad_path_syntax_is_refused() -> None:
    with pytest.raises(MappingError, match=r"invalid path 'lines\[x\]\.sku'"):
        order_mapping("tax_total: lines[x].sku\n")


def test_object_into_a_list_field_needs_as_list() -> None:
    with pytest.raises(MappingError, match="add 'as: list'"):
        mapping("""\
            direction: inbound
            entity: customers
            id: id
            fields:
              name: company
              addresses:
                object: {city: city}
        """)


def test_address_field_unknown_is_named_with_its_dotted_path() -> None:
    with pytest.raises(MappingError, match="Address has no field 'zip'") as err:
        mapping("""\
            direction: inbound
            entity: customers
            id: id
            fields:
              name: company
              addresses:
                as: list
                object: {city: city, zip: zip}
        """)
    assert err.value.field == "addresses.zip"


def test_two_sources_in_one_expression_are_refused() -> None:
    with pytest.raises(MappingError, match="exactly one of"):
        order_mapping("tax_total: {path: tax, const: 0}\n")


def test_duplicate_keys_are_refused() -> None:
    with pytest.raises(MappingError, match="duplicate key 'number'"):
        order_mapping("number: other\n")


def test_outbound_path_missing_from_customer360_is_refused() -> None:
    with pytest.raises(MappingError, match="has no field 'nmae'") as err:
        mapping("""\
            direction: outbound
            target: crm
            fields:
              name: nmae.value
        """)
    assert err.value.field == "name" and err.value.line == 4


def test_yaml_syntax_error_names_the_line() -> None:
    with pytest.raises(MappingError, match="not valid YAML") as err:
        mapping("direction: inbound\nfields: {a: [\n")
    assert err.value.line is not None


def test_python_tags_are_not_constructed() -> None:
    with pytest.raises(MappingError, match="invalid value"):
        order_mapping("tax_total: {const: !!python/object/apply:os.system [echo hi]}\n")


def test_missing_file_is_a_mapping_error(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match="cannot read mapping file"):
        load_mapping(tmp_path / "nope.yaml")
