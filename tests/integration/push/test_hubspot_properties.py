"""HubSpot properties: the push refuses up front while a property the mapping writes is missing;
``concord crm setup`` reports what exists, what is missing and what differs, and creates the
missing ones (in the concord group, the id property unique) so the push then goes through."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from concord.cli.app import app
from concord.cli.crm import setup_target, target_properties
from concord.errors import PushError
from concord.store import Store
from sandbox.crm import CrmServer
from tests.integration.push.conftest import Pusher, customer, hubspot_target, seed
from tests.repo_config import repo_config_data

UPSERT = "/crm/v3/objects/companies/batch/upsert"


@pytest.fixture
def empty_portal(hubspot: CrmServer) -> CrmServer:
    hubspot.known_properties = {"companies": set(), "contacts": set()}  # HubSpot's own only
    return hubspot


def test_the_shipped_mapping_names_each_property_with_its_type() -> None:
    pusher = Pusher(Store("sqlite://"), {"hs": {**hubspot_target_stub()}})
    specs = {(s.object_type, s.name): s for s in target_properties(pusher.config(), "hs")}
    assert specs[("company", "concord_id")].unique and specs[("company", "concord_id")].type == (
        "string"
    )
    assert specs[("company", "lifetime_revenue")].type == "number"
    assert specs[("company", "orders_count")].type == "number"
    assert specs[("company", "last_order_date")].type == "date"
    assert specs[("company", "erp_customer_numbers")].type == "string"
    assert specs[("person", "lifecycle_stage")].label == "Lifecycle stage"
    # retire: mark (the default) marks retired customers with concord_status: setup creates it
    assert specs[("company", "concord_status")].type == specs[("person", "concord_status")].type


def hubspot_target_stub() -> dict[str, object]:
    return {
        "type": "hubspot",
        "base_url": "http://127.0.0.1:9",
        "mapping": "mappings/crm/sandbox_crm.yaml",
        "person_mapping": "mappings/crm/hubspot_contact.yaml",
    }


def test_a_push_refuses_up_front_naming_the_missing_properties(
    store: Store, empty_portal: CrmServer
) -> None:
    seed(store, customer("K001"))
    with pytest.raises(PushError, match=r"no companies properties .*lifetime_revenue") as err:
        Pusher(store, {"hs": hubspot_target(empty_portal)}).push("hs")
    assert "concord crm setup --target hs" in err.value.message and not err.value.retriable
    assert "name" not in err.value.message.split("properties ")[1].split(";")[0].split(", ")
    assert empty_portal.request_count(UPSERT) == 0


def test_setup_reports_then_creates_and_the_push_goes_through(
    store: Store, empty_portal: CrmServer
) -> None:
    pusher = Pusher(store, {"hs": hubspot_target(empty_portal)})
    checked = {s.spec.name: s.state for s in setup_target(pusher.config(), "hs", dry_run=True)}
    assert checked["name"] == checked["domain"] == "standard"
    assert checked["lifetime_revenue"] == checked["concord_id"] == "missing"
    assert empty_portal.property_defs["companies"] == {}  # a dry run creates nothing

    created = setup_target(pusher.config(), "hs", dry_run=False)
    assert {s.spec.name for s in created if s.state == "created"} >= {"lifetime_revenue"}
    defs = empty_portal.property_defs["companies"]
    assert defs["concord_id"]["hasUniqueValue"] is True
    assert (defs["lifetime_revenue"]["type"], defs["lifetime_revenue"]["fieldType"]) == (
        "number",
        "number",
    )
    assert defs["last_order_date"]["type"] == "date"
    assert {d["groupName"] for d in defs.values()} == {"concord"}
    assert "concord" in empty_portal.property_groups["companies"]

    again = {s.state for s in setup_target(pusher.config(), "hs", dry_run=True)}
    assert again <= {"exists", "standard"}
    seed(store, customer("K001"))
    assert pusher.push("hs").accepted == 1


def test_a_property_of_another_type_is_reported_as_differing(
    store: Store, empty_portal: CrmServer
) -> None:
    pusher = Pusher(store, {"hs": hubspot_target(empty_portal)})
    setup_target(pusher.config(), "hs", dry_run=False)
    empty_portal.property_defs["companies"]["orders_count"]["type"] = "string"
    states = {s.spec.name: s for s in setup_target(pusher.config(), "hs", dry_run=True)}
    assert states["orders_count"].state == "differs"
    assert "type string in HubSpot, number needed" in states["orders_count"].detail


def test_salesforce_gets_the_custom_fields_as_a_checklist() -> None:
    pusher = Pusher(
        Store("sqlite://"),
        {
            "sf": {
                "type": "salesforce",
                "instance_url": "http://127.0.0.1:9",
                "mapping": "mappings/crm/salesforce_account.yaml",
            }
        },
    )
    states = {s.spec.name: s for s in setup_target(pusher.config(), "sf", dry_run=True)}
    assert states["Lifetime_Revenue__c"].state == "missing"
    assert "custom field" in states["Lifetime_Revenue__c"].detail
    assert states["Concord_Id__c"].spec.unique and states["Name"].state == "standard"


def test_the_cli_prints_the_setup_as_json(
    empty_portal: CrmServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = repo_config_data()
    data["targets"]["sandbox_crm"]["base_url"] = empty_portal.url
    data["sources"] = {}
    path = tmp_path / "concord.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    monkeypatch.setenv("SANDBOX_CRM_TOKEN", "hubspot-test-token")
    result = CliRunner().invoke(app, ["crm", "setup", "--config", str(path), "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["property"]: r for r in json.loads(result.output)["sandbox_crm"]}
    assert rows["lifetime_revenue"]["state"] == "missing"
    assert empty_portal.property_defs["companies"] == {}
