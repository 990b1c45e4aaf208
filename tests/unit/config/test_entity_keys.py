"""Record ids from ``id_field`` (one field, a dotted path, or a list for a composite key) and
``derived_from`` (an entity mapped from another entity's pulled records) checked as the config
loads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from concord.config import EntityConfig, SourceConfig
from concord.config import _check_derived as check_derived
from concord.errors import ConfigError

JOURNAL_LINE = {
    "Journal_Template_Name": "CASHRCPT",
    "Journal_Batch_Name": "GENERAL",
    "Line_No": 10000,
    "Header": {"No": "S-1"},
}


def entity(**keys: Any) -> EntityConfig:
    return EntityConfig(mapping=Path("x.yaml"), **keys)


def test_a_composite_key_joins_its_parts_readably() -> None:
    ecfg = entity(id_field=["Journal_Template_Name", "Journal_Batch_Name", "Line_No"])
    assert ecfg.record_id(JOURNAL_LINE) == "CASHRCPT/GENERAL/10000"
    assert ecfg.id_label == "Journal_Template_Name + Journal_Batch_Name + Line_No"


def test_a_dotted_id_field_walks_into_the_record() -> None:
    assert entity(id_field="Header.No").record_id(JOURNAL_LINE) == "S-1"
    assert entity(id_field=["Header.No", "Line_No"]).record_id(JOURNAL_LINE) == "S-1/10000"


@pytest.mark.parametrize("blank", [None, "", {"a": 1}])
def test_a_key_with_a_blank_part_is_no_id(blank: Any) -> None:
    ecfg = entity(id_field=["Journal_Template_Name", "Line_No"])
    assert ecfg.record_id({**JOURNAL_LINE, "Line_No": blank}) is None
    assert ecfg.record_id({"Journal_Template_Name": "X"}) is None


def test_an_empty_id_field_list_is_refused() -> None:
    with pytest.raises(ValueError, match="non-empty list"):
        entity(id_field=[])


def source(**entities: dict[str, Any]) -> SourceConfig:
    config = SourceConfig(type="soap", entities={n: entity(**e) for n, e in entities.items()})
    config.name = "nav"
    return config


def test_derived_from_names_a_pulled_entity_of_the_same_source() -> None:
    check_derived(source(orders={}, shipments={"derived_from": "orders"}))
    with pytest.raises(ConfigError, match=r"no entity 'order'.*entities: orders, shipments") as e:
        check_derived(source(orders={}, shipments={"derived_from": "order"}))
    assert e.value.key == "sources.nav.entities.shipments.derived_from"
    with pytest.raises(ConfigError, match="derived itself"):
        check_derived(source(orders={}, a={"derived_from": "orders"}, b={"derived_from": "a"}))


def test_the_connector_sees_only_the_pulled_entities() -> None:
    config = source(orders={}, shipments={"derived_from": "orders"})
    assert list(config.pulled().entities) == ["orders"]
    assert config.pulled().name == "nav" and list(config.entities) == ["orders", "shipments"]
