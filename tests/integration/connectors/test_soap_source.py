"""The declarative SOAP source against the NAV-like sandbox over loopback: paging (bookmark, page
number, date windows), incremental filters, resume, auth styles, WSDL from a URL, both readers."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from concord.config import EntityConfig, SourceConfig
from concord.contracts import Checkpoint, Page, Source, Window, build_source
from concord.errors import ConfigError, SourceError
from concord.testing import SourceContract
from connectors.erp.soap import SoapSource
from sandbox.nav_data import NavDataset
from sandbox.soap_erp import DEFAULT_PASSWORD, DEFAULT_USER, SoapErpServer

NAV_PASSWORD_ENV = "TEST_SANDBOX_NAV_PASSWORD"

ENTITIES: dict[str, dict[str, Any]] = {
    "customers": {
        "wsdl": "sandbox/wsdl/customer.wsdl",
        "address": "/WS/CRONUS/Page/Customer",
        "filters": [{"Field": "No", "Criteria": ""}],
        "records_path": "ReadMultiple_Result.Customer",
    },
    "orders": {
        "wsdl": "sandbox/wsdl/sales_order.wsdl",
        "address": "/WS/CRONUS/Page/SalesOrder",
        "filters": [{"Field": "No", "Criteria": ""}],
        "records_path": "ReadMultiple_Result.SalesOrder",
    },
    "payments": {
        "wsdl": "sandbox/wsdl/cust_ledger_entry.wsdl",
        "address": "/WS/CRONUS/Page/CustLedgerEntry",
        "filters": [{"Field": "Document_Type", "Criteria": "Payment"}],
        "records_path": "ReadMultiple_Result.CustLedgerEntry",
    },
}


@pytest.fixture(scope="module")
def dataset() -> NavDataset:
    return NavDataset.generate(seed=7, customers=60)


@pytest.fixture
def nav(dataset: NavDataset, monkeypatch: pytest.MonkeyPatch) -> Iterator[SoapErpServer]:
    monkeypatch.setenv(NAV_PASSWORD_ENV, DEFAULT_PASSWORD)
    with SoapErpServer(dataset) as server:
        yield server


def make_source(
    url: str, entities: dict[str, dict[str, Any]] | None = None, **overrides: Any
) -> SoapSource:
    settings: dict[str, Any] = {
        "base_url": url,
        "auth": {
            "type": "basic",
            "username": DEFAULT_USER,
            "password": {"env": NAV_PASSWORD_ENV},
        },
        "page_size": 7,
        "incremental": {"type": "filter", "field": "Last_Date_Modified", "format": "date"},
        "http": {"backoff_base": 0.01, "max_attempts": 4, "timeout": 10},
        **overrides,
    }
    config = SourceConfig.model_validate(
        {
            "type": "soap",
            **settings,
            "entities": {
                name: EntityConfig(mapping=Path("x.yaml"), **spec)
                for name, spec in (entities or ENTITIES).items()
            },
        }
    )
    config.name = "nav"
    source = build_source(config)
    assert isinstance(source, SoapSource)
    return source


def pages(
    source: SoapSource, entity: str, window: Window | None = None, resume: Checkpoint | None = None
) -> list[Page]:
    return list(source.extract(entity, window or Window(None, None), resume))


def records(source: SoapSource, entity: str, window: Window | None = None) -> list[dict[str, Any]]:
    return [r for p in pages(source, entity, window) for r in p.records]


# -- paging ---------------------------------------------------------------------------------------


def test_bookmark_paging_reads_every_customer_once_until_an_empty_result(
    nav: SoapErpServer, dataset: NavDataset
) -> None:
    source = make_source(nav.url)
    got = pages(source, "customers")
    numbers = [r["No"] for p in got for r in p.records]
    assert numbers == [r["No"] for r in dataset.pages["Customer"]]
    assert got[-1].records == [] and got[-1].checkpoint is None  # NAV stops on an empty set
    assert all(len(p.records) == 7 for p in got[:-2])
    assert nav.count("ReadMultiple") == len(got)


def test_each_page_checkpoint_carries_the_bookmark_of_its_last_record(nav: SoapErpServer) -> None:
    source = make_source(nav.url)
    first = next(iter(source.extract("customers", Window(None, None), None)))
    assert first.checkpoint is not None
    token = json.loads(first.checkpoint.token)
    assert token["args"]["bookmarkKey"] == first.records[-1]["Key"]


def test_resume_from_a_checkpoint_continues_after_the_committed_page(
    nav: SoapErpServer, dataset: NavDataset
) -> None:
    source = make_source(nav.url)
    iterator = source.extract("orders", Window(None, None), None)
    first, second = next(iterator), next(iterator)
    assert second.checkpoint is not None
    rest = [r["No"] for p in pages(source, "orders", resume=second.checkpoint) for r in p.records]
    seen = [r["No"] for r in first.records + second.records] + rest
    assert seen == [r["No"] for r in dataset.pages["SalesOrder"]]


def test_page_number_paging_stops_on_a_short_page(nav: SoapErpServer, dataset: NavDataset) -> None:
    spec = {
        **ENTITIES["payments"],
        "operation": "ReadByPage",
        "records_path": "ReadByPage_Result.CustLedgerEntry",
        "paginator": {"type": "page_number", "page_arg": "pageNo", "size_arg": "pageSize"},
        "page_size": 10,
    }
    source = make_source(nav.url, {"payments": spec})
    got = pages(source, "payments")
    expected = [
        r["Entry_No"] for r in dataset.pages["CustLedgerEntry"] if r["Document_Type"] == "Payment"
    ]
    assert [r["Entry_No"] for p in got for r in p.records] == expected
    assert len(got[-1].records) < 10 and got[-1].checkpoint is None
    assert nav.count("ReadByPage") == len(got) == len(expected) // 10 + 1


def test_date_windows_split_the_pull_into_slices_and_miss_nothing(
    nav: SoapErpServer, dataset: NavDataset
) -> None:
    spec = {**ENTITIES["customers"], "date_windows": {"days": 120, "start": "2024-01-01"}}
    source = make_source(nav.url, {"customers": spec})
    end = datetime(2026, 11, 2, tzinfo=UTC)
    got = pages(source, "customers", Window(None, end))
    assert sorted(r["No"] for p in got for r in p.records) == sorted(
        r["No"] for r in dataset.pages["Customer"]
    )
    # one empty closing call per slice at least: more calls than a single window would need
    slices = -(-(end - datetime(2024, 1, 1, tzinfo=UTC)).days // 120)
    assert nav.count("ReadMultiple") >= slices
    assert got[-1].checkpoint is None


# -- incremental filters --------------------------------------------------------------------------


def test_window_start_becomes_a_nav_filter_on_last_date_modified(
    nav: SoapErpServer, dataset: NavDataset
) -> None:
    source = make_source(nav.url)
    got = records(source, "customers", Window(datetime(2026, 6, 1, tzinfo=UTC), None))
    expected = [
        r["No"] for r in dataset.pages["Customer"] if r["Last_Date_Modified"] >= "2026-06-01"
    ]
    assert expected and [r["No"] for r in got] == expected
    assert len(expected) < dataset.count("Customer")


def test_a_closed_window_becomes_an_inclusive_nav_range(
    nav: SoapErpServer, dataset: NavDataset
) -> None:
    source = make_source(nav.url)
    window = Window(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 7, 1, tzinfo=UTC))
    got = records(source, "customers", window)
    expected = [
        r["No"]
        for r in dataset.pages["Customer"]
        if "2026-01-01" <= r["Last_Date_Modified"] <= "2026-06-30"
    ]
    assert expected and [r["No"] for r in got] == expected


def test_configured_filters_and_the_window_filter_combine(
    nav: SoapErpServer, dataset: NavDataset
) -> None:
    source = make_source(nav.url)
    got = records(source, "payments", Window(datetime(2026, 3, 1, tzinfo=UTC), None))
    expected = [
        r["Entry_No"]
        for r in dataset.pages["CustLedgerEntry"]
        if r["Document_Type"] == "Payment" and r["Last_Date_Modified"] >= "2026-03-01"
    ]
    assert expected and [r["Entry_No"] for r in got] == expected


def test_wildcard_filter_from_config_reaches_the_service(
    nav: SoapErpServer, dataset: NavDataset
) -> None:
    spec = {**ENTITIES["customers"], "filters": [{"Field": "Name", "Criteria": "@*gmbh*"}]}
    got = records(make_source(nav.url, {"customers": spec}), "customers")
    expected = [r["No"] for r in dataset.pages["Customer"] if "gmbh" in r["Name"].lower()]
    assert expected and [r["No"] for r in got] == expected


# -- records --------------------------------------------------------------------------------------


def test_records_are_plain_dicts_with_typed_scalars_and_nested_lines(nav: SoapErpServer) -> None:
    order = records(make_source(nav.url), "orders")[0]
    assert isinstance(order, dict)
    assert isinstance(order["Order_Date"], str) and order["Currency_Code"] is None
    assert order["Prices_Including_VAT"] is False
    lines = order["SalesLines"]["Sales_Order_Line"]
    assert isinstance(lines, list) and lines and isinstance(lines[0], dict)
    assert isinstance(lines[0]["Total_Amount_Incl_VAT"], str)
    assert isinstance(lines[0]["Line_No"], int)
    payment = records(make_source(nav.url), "payments")[0]
    assert isinstance(payment["Entry_No"], int) and payment["Open"] is False


def test_lxml_and_zeep_readers_give_identical_records(nav: SoapErpServer) -> None:
    fast = make_source(nav.url, parser="lxml")
    reference = make_source(nav.url, parser="zeep")
    for entity in ENTITIES:
        assert records(fast, entity) == records(reference, entity), entity


# -- auth, WSDL, TLS ------------------------------------------------------------------------------


def test_basic_auth_reaches_the_service_and_a_wrong_password_is_refused(
    nav: SoapErpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert records(make_source(nav.url), "customers")
    monkeypatch.setenv(NAV_PASSWORD_ENV, "wrong-nav-password-4c1d")
    with pytest.raises(SourceError, match=r"HTTP 401.*authentication refused") as err:
        records(make_source(nav.url), "customers")
    assert "wrong-nav-password-4c1d" not in str(err.value)
    assert err.value.retriable is False


def test_ws_security_username_token_authenticates(
    dataset: NavDataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(NAV_PASSWORD_ENV, DEFAULT_PASSWORD)
    auth = {"type": "ws_security", "username": DEFAULT_USER, "password": {"env": NAV_PASSWORD_ENV}}
    with SoapErpServer(dataset, auth="ws_security") as server:
        assert len(records(make_source(server.url, auth=auth), "customers")) == dataset.count(
            "Customer"
        )
        monkeypatch.setenv(NAV_PASSWORD_ENV, "bad-nav-password-9e2a")
        with pytest.raises(SourceError, match=r"InvalidSecurity.*rejected the client credentials"):
            records(make_source(server.url, auth=auth), "customers")


def test_wsdl_from_a_url_is_fetched_once_and_cached(nav: SoapErpServer) -> None:
    spec = {**ENTITIES["customers"], "wsdl": f"{nav.url}/WS/CRONUS/Page/Customer?wsdl"}
    spec.pop("address")  # the WSDL served by the sandbox carries the right address
    for _ in range(3):
        source = make_source(nav.url, {"customers": spec})
        assert records(source, "customers")
        source.close()
    assert nav.count("wsdl", method="GET") == 1


def test_configured_address_overrides_the_wsdls(nav: SoapErpServer) -> None:
    # the file WSDL points at nav.example.invalid; the configured address wins
    source = make_source(nav.url)
    assert records(source, "customers")
    assert all(path.startswith("/WS/CRONUS/Page/Customer") for _, path, _ in nav.requests)


def test_an_unknown_operation_is_a_config_error_naming_the_key(nav: SoapErpServer) -> None:
    spec = {**ENTITIES["customers"], "operation": "ReadEverything"}
    with pytest.raises(ConfigError, match=r"sources\.nav\.entities\.customers\.operation"):
        records(make_source(nav.url, {"customers": spec}), "customers")


def test_a_records_path_not_in_the_wsdl_is_a_config_error(nav: SoapErpServer) -> None:
    spec = {**ENTITIES["customers"], "records_path": "ReadMultiple_Result.Kunde"}
    with pytest.raises(ConfigError, match=r"'Kunde' is not an element there.*Customer"):
        records(make_source(nav.url, {"customers": spec}), "customers")


def test_a_missing_records_path_is_a_config_error_naming_the_entity_key() -> None:
    spec = {k: v for k, v in ENTITIES["customers"].items() if k != "records_path"}
    with pytest.raises(ConfigError, match=r"sources\.nav\.entities\.customers\.records_path"):
        make_source("http://127.0.0.1:9", {"customers": spec})


class TestSoapSourceContract(SourceContract):
    """The SOAP source passes the contract every source passes (``concord.testing``)."""

    entity = "customers"
    id_field = "No"

    @pytest.fixture
    def source(self, nav: SoapErpServer) -> Iterator[Source]:  # type: ignore[override]
        built = make_source(nav.url)
        yield built
        built.close()

    @pytest.fixture
    def requests_made(self, nav: SoapErpServer) -> Callable[[], int]:  # type: ignore[override]
        return lambda: nav.count("ReadMultiple")


# -- the NAV profile ------------------------------------------------------------------------------


def nav_profile_source(url: str, entities: dict[str, dict[str, Any]]) -> SoapSource:
    config = SourceConfig.model_validate(
        {
            "type": "soap",
            "profile": "nav",
            "base_url": f"{url}/WS/CRONUS",
            "auth": {
                "type": "basic",
                "username": DEFAULT_USER,
                "password": {"env": NAV_PASSWORD_ENV},
            },
            "page_size": 50,
            "entities": {
                name: EntityConfig(mapping=Path("x.yaml"), **spec)
                for name, spec in entities.items()
            },
        }
    )
    config.name = "nav"
    return SoapSource.from_config(config)


def test_the_nav_profile_reads_pages_at_their_path_with_blank_dates_as_null(
    nav: SoapErpServer, dataset: NavDataset
) -> None:
    source = nav_profile_source(
        nav.url,
        {"orders": {"resource": "sales_orders", "wsdl": "sandbox/wsdl/sales_order.wsdl"}},
    )
    got = records(source, "orders", Window(datetime(2026, 6, 1, tzinfo=UTC), None))
    assert len(got) == dataset.count("SalesOrder")  # no modification date: the page whole
    sent = {r["No"]: r for r in dataset.pages["SalesOrder"]}
    blank = [r for r in got if sent[r["No"]]["Promised_Delivery_Date"] == "0001-01-01"]
    assert blank and all(r["Promised_Delivery_Date"] is None for r in blank)
    assert all(r["Requested_Delivery_Date"] is None for r in got)
    assert {path for _m, path, op in nav.requests if op == "ReadMultiple"} == {
        "/WS/CRONUS/Page/SalesOrder"
    }


def test_the_nav_profile_leaves_the_journals_gl_lines_out(
    nav: SoapErpServer, dataset: NavDataset
) -> None:
    source = nav_profile_source(
        nav.url,
        {
            "receipts": {
                "resource": "cash_receipt_journal",
                "wsdl": "sandbox/wsdl/cash_receipt_journal.wsdl",
            }
        },
    )
    lines = records(source, "receipts")
    assert len(lines) == dataset.count("CashReceiptJournal")
    assert {r["Account_Type"] for r in lines} == {"Customer", "G_L_Account"}
    (rule,) = source.exclusions("receipts")
    kept = [r for r in lines if r[rule.path] not in rule.values]
    assert kept and {r["Account_Type"] for r in kept} == {"Customer"}
    assert all(r["Amount"].startswith("-") for r in kept)  # NAV: a payment credits the customer
