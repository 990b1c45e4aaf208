"""The ``business_central`` profile against the Business Central API v2.0 sandbox on loopback:
OAuth2 client credentials, ``@odata.nextLink`` paging, ``$filter`` windows, the whole pipeline."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from concord.config import EntityConfig, SourceConfig, load_config
from concord.contracts import Window
from concord.errors import SourceError
from concord.pipeline import RunOptions, run_sync
from connectors.erp.rest import RestSource
from sandbox.business_central import CLIENT_ID, CLIENT_SECRET, BusinessCentralServer

REPO = Path(__file__).resolve().parents[3]
ENTITIES = {
    "customers": ("customers", "customers.yaml"),
    "orders": ("salesOrders", "sales_orders.yaml"),
    "shipments": ("salesShipments", "sales_shipments.yaml"),
    "invoices": ("salesInvoices", "sales_invoices.yaml"),
    "payments": ("customerPayments", "customer_payments.yaml"),
}


@pytest.fixture
def bc(monkeypatch: pytest.MonkeyPatch) -> Iterator[BusinessCentralServer]:
    monkeypatch.setenv("BC_CLIENT_SECRET", CLIENT_SECRET)
    with BusinessCentralServer() as server:
        yield server


def source_section(server: BusinessCentralServer, **overrides: Any) -> dict[str, Any]:
    return {
        "type": "rest",
        "profile": "business_central",
        "base_url": server.api_url,
        "auth": {
            "token_url": server.token_url,
            "client_id": CLIENT_ID,
            "client_secret": {"env": "BC_CLIENT_SECRET"},
        },
        "page_size": 10,
        "http": {"backoff_base": 0.01},
        **overrides,
    }


def make_source(server: BusinessCentralServer, **overrides: Any) -> RestSource:
    config = SourceConfig.model_validate(
        {
            **source_section(server, **overrides),
            "entities": {
                name: EntityConfig(
                    mapping=Path("x.yaml"), resource=resource, cursor_field="lastModifiedDateTime"
                )
                for name, (resource, _m) in ENTITIES.items()
            },
        }
    )
    config.name = "bc"
    return RestSource.from_config(config)


def pull(source: RestSource, entity: str, window: Window | None = None) -> list[dict[str, Any]]:
    return [
        r
        for page in source.extract(entity, window or Window(None, None), None)
        for r in page.records
    ]


def test_next_links_page_through_every_record_with_one_token(bc: BusinessCentralServer) -> None:
    source = make_source(bc)
    for entity, (entity_set, _m) in ENTITIES.items():
        records = pull(source, entity)
        ids = [r["id"] for r in records]
        assert len(ids) == len(set(ids)) == bc.data.count(entity_set), entity
    assert bc.token_requests == 1
    assert bc.request_count("/v2.0/", "GET") > 5 * 2  # several pages per entity set


def test_orders_come_with_their_lines_in_cursor_order(bc: BusinessCentralServer) -> None:
    records = pull(make_source(bc), "orders")
    assert all(r["salesOrderLines"] for r in records)
    keys = [(r["lastModifiedDateTime"], r["id"]) for r in records]
    assert keys == sorted(keys)


def test_window_is_sent_as_an_odata_filter_and_picks_up_only_edits(
    bc: BusinessCentralServer,
) -> None:
    source = make_source(bc)
    everything = pull(source, "customers")
    watermark = max(r["lastModifiedDateTime"] for r in everything)
    edited = [everything[3]["id"], everything[7]["id"]]
    for cid in edited:
        bc.data.touch("customers", cid, displayName="Edited")
    since = datetime.fromisoformat(watermark.replace("Z", "+00:00"))
    changed = pull(source, "customers", Window(since, None))
    boundary = {r["id"] for r in everything if r["lastModifiedDateTime"] == watermark}
    assert {r["id"] for r in changed} - boundary == set(edited)
    sent = [p for _m, p in bc.requests if "customers?" in p]
    assert "lastModifiedDateTime%20ge%20" in sent[-1] or "lastModifiedDateTime+ge+" in sent[-1]


def test_window_end_is_exclusive(bc: BusinessCentralServer) -> None:
    source = make_source(bc)
    everything = pull(source, "invoices")
    middle = sorted(r["lastModifiedDateTime"] for r in everything)[len(everything) // 2]
    end = datetime.fromisoformat(middle.replace("Z", "+00:00"))
    before = pull(source, "invoices", Window(None, end))
    assert before and all(r["lastModifiedDateTime"] < middle for r in before)
    after = pull(source, "invoices", Window(end, end + timedelta(days=3650)))
    assert len(before) + len(after) == len(everything)


def test_token_is_refreshed_before_it_expires(bc: BusinessCentralServer) -> None:
    source = make_source(bc)
    auth: Any = source.client.auth
    now = [1000.0]
    auth.cache.clock = lambda: now[0]
    pull(source, "payments")
    now[0] += bc.token_lifetime - 30  # inside the refresh margin, not yet expired
    pull(source, "payments")
    assert bc.token_requests == 2


def test_revoked_token_is_replaced_once_and_the_pull_goes_on(bc: BusinessCentralServer) -> None:
    source = make_source(bc)
    pull(source, "shipments")
    bc.revoke_tokens()
    assert len(pull(source, "shipments")) == bc.data.count("salesShipments")
    assert bc.token_requests == 2


def test_wrong_client_secret_is_a_clear_error_without_the_secret(
    bc: BusinessCentralServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BC_CLIENT_SECRET", "not-the-secret-value")
    with pytest.raises(SourceError) as info:
        pull(make_source(bc), "customers")
    message = str(info.value)
    assert "source 'bc'" in message and "token request refused" in message
    assert "HTTP 401" in message and "invalid_client" in message
    assert "not-the-secret-value" not in message


def sync_config(
    bc: BusinessCentralServer, tmp_path: Path, store_url: str, **overrides: Any
) -> Path:
    """A pipeline config of every entity of the sandbox, with its store."""
    section = source_section(bc, **overrides)
    section["entities"] = {
        name: {
            "resource": resource,
            "mapping": str(REPO / "mappings" / "business_central" / mapping),
            "cursor_field": "lastModifiedDateTime",
        }
        for name, (resource, mapping) in ENTITIES.items()
    }
    config = {
        "store_url": store_url,
        "base_currency": "USD",
        "fx_rates": {"EUR": "1.08"},
        "sources": {"bc": section},
        "targets": {},
    }
    path = tmp_path / "concord.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_full_sync_maps_every_business_central_record(
    bc: BusinessCentralServer, tmp_path: Path, store_url: str
) -> None:
    report = run_sync(load_config(sync_config(bc, tmp_path, store_url)), RunOptions(trigger="test"))
    for name, (entity_set, _m) in ENTITIES.items():
        mapped = report["stages"]["map"][f"bc/{name}"]
        assert mapped["rejected"] == 0, (name, mapped)
        extracted = report["stages"]["extract"][f"bc/{name}"]
        assert extracted["records"] == bc.data.count(entity_set)
        assert extracted["count_check"] == "agree", (name, extracted)


def test_an_entity_without_a_count_is_pulled_whole_and_the_erp_never_asked_to_count(
    bc: BusinessCentralServer, tmp_path: Path, store_url: str
) -> None:
    source = make_source(bc, count=None)
    assert not source.counts("customers") and make_source(bc).counts("customers")
    config = load_config(sync_config(bc, tmp_path, store_url, count=None))
    report = run_sync(config, RunOptions(trigger="test"))
    for name, (entity_set, _m) in ENTITIES.items():
        extracted = report["stages"]["extract"][f"bc/{name}"]
        assert extracted["records"] == bc.data.count(entity_set), name
        assert extracted["count_check"] == "", (name, extracted)
    assert not any("$count" in path for _method, path in bc.requests)
    assert report["stages"]["reconcile"]["all"]["ok"]


def test_a_window_is_counted_with_odata_count_and_the_same_filter(
    bc: BusinessCentralServer,
) -> None:
    source = make_source(bc)
    everything = pull(source, "customers")
    counted = source.count("customers", Window(None, None))
    assert counted is not None and counted.how == "count endpoint"
    assert counted.total == len(everything) == bc.data.count("customers")
    since = datetime.fromisoformat(
        max(r["lastModifiedDateTime"] for r in everything).replace("Z", "+00:00")
    )
    bc.data.touch("customers", everything[2]["id"], displayName="Edited")
    window = Window(since, None)
    windowed = source.count("customers", window)
    assert windowed is not None and windowed.total == len(pull(source, "customers", window))
    assert any("/customers/$count?" in p and "lastModifiedDateTime" in p for _m, p in bc.requests)
