"""Profiles merged under a source section: deep merge, kind switches, resources, clear errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from concord.config import EntityConfig, SourceConfig
from concord.errors import ConfigError
from connectors.erp.pagination import NextLinkPaginator, RangePaginator
from connectors.erp.profile import PROFILE_DIR, apply_profile, merge
from connectors.erp.rest import RestSource


def test_merge_is_deep_and_the_user_wins() -> None:
    base = {"auth": {"type": "bearer"}, "http": {"timeout": 30, "max_attempts": 5}}
    over = {"auth": {"token": {"env": "X"}}, "http": {"timeout": 5}}
    assert merge(base, over) == {
        "auth": {"type": "bearer", "token": {"env": "X"}},
        "http": {"timeout": 5, "max_attempts": 5},
    }


def test_another_type_replaces_the_profiles_section() -> None:
    base = {"paginator": {"type": "range", "unit": "records"}}
    over = {"paginator": {"type": "offset"}}
    assert merge(base, over) == {"paginator": {"type": "offset"}}


def test_an_entity_inherits_its_resource_and_may_override_it() -> None:
    settings, entities = apply_profile(
        "erp",
        {"profile": "tryton", "base_url": "http://t/db"},
        {"customers": {"resource": "party.party", "page_size": 50}, "sale.sale": {}},
    )
    assert "profile" not in settings and settings["decode"] == "tryton"
    assert entities["customers"]["path"] == "rest/model/party.party"
    assert entities["customers"]["page_size"] == 50
    assert "resource" not in entities["customers"]
    assert entities["sale.sale"]["path"] == "rest/model/sale.sale"  # matched by name


def test_an_unknown_profile_names_the_key_and_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"sources.erp.profile.*unknown profile 'sap'.*tryton"):
        apply_profile("erp", {"profile": "sap"}, {})


def test_an_unknown_resource_names_the_entity() -> None:
    with pytest.raises(ConfigError, match=r"entities.x.resource.*no resource 'no-such-resource'"):
        apply_profile("erp", {"profile": "tryton"}, {"x": {"resource": "no-such-resource"}})


def test_every_bundled_profile_builds_a_source() -> None:
    names = sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))
    assert names == ["business_central", "nav", "tryton"]


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K", "tryton-key")
    monkeypatch.setenv("S", "bc-secret")


def _source(section: dict[str, Any], entities: dict[str, dict[str, Any]]) -> RestSource:
    config = SourceConfig.model_validate(
        {
            "type": "rest",
            **section,
            "entities": {n: EntityConfig(mapping=Path("x.yaml"), **e) for n, e in entities.items()},
        }
    )
    config.name = "erp"
    return RestSource.from_config(config)


def test_tryton_profile_builds_range_paging_and_decoding() -> None:
    source = _source(
        {"profile": "tryton", "base_url": "http://127.0.0.1:1/db", "auth": {"token": {"env": "K"}}},
        {"orders": {"resource": "sale.sale"}},
    )
    assert isinstance(source.settings.paginator, RangePaginator)
    assert source.decoding is not None
    assert source.client.url("rest/model/sale.sale") == "http://127.0.0.1:1/db/rest/model/sale.sale"


def test_business_central_profile_builds_odata_paging() -> None:
    source = _source(
        {
            "profile": "business_central",
            "base_url": "http://127.0.0.1:1/api/v2.0/companies(1)",
            "auth": {
                "token_url": "http://127.0.0.1:1/t",
                "client_id": "c",
                "client_secret": {"env": "S"},
            },
        },
        {"customers": {}},
    )
    assert isinstance(source.settings.paginator, NextLinkPaginator)
    assert source.settings.records_path == "value"


def test_a_bad_key_in_a_profiled_entity_names_the_entity() -> None:
    with pytest.raises(ConfigError, match=r"sources.erp.entities.orders.pagesize"):
        _source(
            {"profile": "tryton", "base_url": "http://t/db", "auth": {"token": {"env": "K"}}},
            {"orders": {"resource": "sale.sale", "pagesize": 3}},
        )
