"""What the SOAP source does when the service misbehaves: SOAP Faults, HTTP 500s, 503s,
malformed XML, schema mismatches and XML attacks (billion laughs, XXE), with either reader."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from concord.contracts import Window
from concord.errors import SourceError
from sandbox.nav_data import NavDataset
from sandbox.soap_erp import DEFAULT_PASSWORD, Injection, SoapErpServer, fault_xml
from tests.integration.connectors.test_soap_source import (
    ENTITIES,
    NAV_PASSWORD_ENV,
    make_source,
    records,
)

CUSTOMER_PATH = "/WS/CRONUS/Page/Customer"
NS = "urn:microsoft-dynamics-schemas/page/customer"
ENV = "http://schemas.xmlsoap.org/soap/envelope/"
READERS = ["lxml", "zeep"]


@pytest.fixture(scope="module")
def dataset() -> NavDataset:
    return NavDataset.generate(seed=7, customers=30, nav_only=5)


@pytest.fixture
def nav(dataset: NavDataset, monkeypatch: pytest.MonkeyPatch) -> Iterator[SoapErpServer]:
    monkeypatch.setenv(NAV_PASSWORD_ENV, DEFAULT_PASSWORD)
    with SoapErpServer(dataset) as server:
        yield server


def inject(server: SoapErpServer, body: bytes, status: int = 200, times: int = 1) -> None:
    server.injections.append(Injection(status=status, body=body, times=times, path=CUSTOMER_PATH))


def result(inner: str) -> bytes:
    return (
        f'<s:Envelope xmlns:s="{ENV}"><s:Body><ReadMultiple_Result xmlns="{NS}">'
        f"<ReadMultiple_Result>{inner}</ReadMultiple_Result></ReadMultiple_Result>"
        f"</s:Body></s:Envelope>"
    ).encode()


def pull_error(server: SoapErpServer, parser: str = "lxml", **overrides: Any) -> SourceError:
    with pytest.raises(SourceError) as err:
        records(make_source(server.url, parser=parser, **overrides), "customers")
    return err.value


# -- faults and HTTP errors -----------------------------------------------------------------------


@pytest.mark.parametrize("parser", READERS)
def test_a_soap_fault_names_source_operation_and_fault_text_and_is_not_retried(
    nav: SoapErpServer, parser: str
) -> None:
    inject(nav, fault_xml("The Customer table is locked by another user."), status=500)
    err = pull_error(nav, parser)
    text = str(err)
    assert "source 'nav'" in text and "operation ReadMultiple for 'customers'" in text
    assert "SOAP Fault" in text and "locked by another user" in text
    assert err.status == 500 and err.retriable is False
    assert nav.count("ReadMultiple") == 1


def test_a_fault_answered_with_http_200_is_still_a_fault(nav: SoapErpServer) -> None:
    inject(nav, fault_xml("Posting date is not within your range of allowed posting dates."))
    err = pull_error(nav)
    assert "SOAP Fault" in str(err) and "allowed posting dates" in str(err)
    assert err.status == 200 and err.retriable is False


def test_a_bad_filter_is_a_service_fault_with_its_text(nav: SoapErpServer) -> None:
    spec = {
        **ENTITIES["customers"],
        "filters": [{"Field": "Last_Date_Modified", "Criteria": ">=soon"}],
    }
    with pytest.raises(SourceError, match="not a valid date for Last_Date_Modified"):
        records(make_source(nav.url, {"customers": spec}), "customers")


def test_an_http_500_without_a_fault_is_reported_and_not_retried(nav: SoapErpServer) -> None:
    inject(nav, b"<html><body>Internal Server Error</body></html>", status=500)
    err = pull_error(nav)
    assert "server error without a SOAP Fault" in str(err) and err.status == 500
    assert nav.count("ReadMultiple") == 1


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_errors_are_retried_and_then_succeed(
    nav: SoapErpServer, dataset: NavDataset, status: int
) -> None:
    inject(nav, b"<html>busy</html>", status=status, times=2)
    got = records(make_source(nav.url), "customers")
    assert [r["No"] for r in got] == [r["No"] for r in dataset.pages["Customer"]]
    assert nav.count("ReadMultiple") >= 2 + 1


def test_a_service_that_stays_unavailable_gives_up_with_a_retriable_error(
    nav: SoapErpServer,
) -> None:
    inject(nav, b"<html>down</html>", status=503, times=10)
    err = pull_error(nav)
    assert "gave up after 4 attempts" in str(err) and err.retriable is True and err.status == 503


def test_connection_refused_is_retried_then_reported(nav: SoapErpServer) -> None:
    url = nav.url
    nav.stop()
    with pytest.raises(SourceError, match=r"connection failed.*gave up after 4 attempts") as err:
        records(make_source(url), "customers")
    assert err.value.retriable is True


# -- malformed XML and schema mismatches ----------------------------------------------------------


@pytest.mark.parametrize("parser", READERS)
def test_malformed_xml_is_a_clear_error(nav: SoapErpServer, parser: str) -> None:
    inject(nav, result("<Customer><No>10000</No><Name>Unclosed</Customer>"))
    err = pull_error(nav, parser)
    assert "not well-formed XML" in str(err) and "operation ReadMultiple" in str(err)
    assert err.retriable is False


@pytest.mark.parametrize("parser", READERS)
def test_an_element_the_wsdl_does_not_declare_is_a_schema_mismatch(
    nav: SoapErpServer, parser: str
) -> None:
    inject(nav, result("<Customer><No>10000</No><Kundengruppe>A</Kundengruppe></Customer>"))
    err = pull_error(nav, parser)
    assert "does not match the WSDL" in str(err) and "Kundengruppe" in str(err)


@pytest.mark.parametrize("parser", READERS)
def test_a_value_of_the_wrong_type_is_a_schema_mismatch(nav: SoapErpServer, parser: str) -> None:
    inject(nav, result("<Customer><No>1</No><Credit_Limit_LCY>lots</Credit_Limit_LCY></Customer>"))
    err = pull_error(nav, parser)
    assert "does not match the WSDL" in str(err)
    if parser == "lxml":
        assert "Credit_Limit_LCY" in str(err) and "'lots' is not a valid decimal" in str(err)


@pytest.mark.parametrize("parser", READERS)
def test_an_answer_for_another_operation_is_a_schema_mismatch(
    nav: SoapErpServer, parser: str
) -> None:
    inject(
        nav,
        f'<s:Envelope xmlns:s="{ENV}"><s:Body><Read_Result xmlns="{NS}"/></s:Body>'
        "</s:Envelope>".encode(),
    )
    err = pull_error(nav, parser)
    assert "expected ReadMultiple_Result, got Read_Result" in str(err)


# -- XML attacks ----------------------------------------------------------------------------------

BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
    + "".join(
        f' <!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">\n'
        for i in range(1, 10)
    )
    + "]>\n"
).encode() + result("<Customer><No>1</No><Name>&lol9;</Name></Customer>")


def xxe(path: Path) -> bytes:
    return (
        f'<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY xxe SYSTEM "file://{path}">]>\n'
    ).encode() + result("<Customer><No>1</No><Name>&xxe;</Name></Customer>")


@pytest.mark.parametrize("parser", READERS)
def test_a_billion_laughs_response_is_refused(nav: SoapErpServer, parser: str) -> None:
    inject(nav, BILLION_LAUGHS)
    err = pull_error(nav, parser)
    assert "refused" in str(err) and ("DTD" in str(err) or "entities" in str(err))
    assert "lollol" not in str(err)


@pytest.mark.parametrize("parser", READERS)
def test_an_xxe_response_is_refused_and_the_file_is_not_read(
    nav: SoapErpServer, parser: str, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    inject(nav, xxe(secret))
    err = pull_error(nav, parser)
    assert "refused" in str(err)
    assert "TOP-SECRET-VALUE" not in str(err)


def test_a_fault_carrying_a_dtd_is_refused_not_parsed(nav: SoapErpServer, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    body = (
        f'<!DOCTYPE r [<!ENTITY xxe SYSTEM "file://{secret}">]>'
        f'<s:Envelope xmlns:s="{ENV}"><s:Body><s:Fault><faultcode>s:Client</faultcode>'
        f"<faultstring>&xxe;</faultstring></s:Fault></s:Body></s:Envelope>"
    ).encode()
    inject(nav, body, status=500)
    err = pull_error(nav)
    assert "TOP-SECRET-VALUE" not in str(err)
    assert "server error without a SOAP Fault" in str(err)


def test_a_wsdl_with_a_dtd_is_refused(nav: SoapErpServer, tmp_path: Path) -> None:
    wsdl = tmp_path / "evil.wsdl"
    text = (Path(__file__).resolve().parents[3] / "sandbox/wsdl/customer.wsdl").read_text()
    wsdl.write_text(text.replace("<definitions", '<!DOCTYPE d [<!ENTITY e "x">]>\n<definitions', 1))
    spec = {**ENTITIES["customers"], "wsdl": str(wsdl)}
    with pytest.raises(SourceError, match="cannot load the WSDL: DTDForbidden"):
        records(make_source(nav.url, {"customers": spec}), "customers")


def test_window_none_pull_still_works_after_an_injected_fault(nav: SoapErpServer) -> None:
    inject(nav, fault_xml("transient"), status=500)
    pull_error(nav)
    assert records(make_source(nav.url), "customers", Window(None, None))


def test_an_unreachable_wsdl_url_is_a_retriable_error_naming_the_wsdl(nav: SoapErpServer) -> None:
    url = nav.url
    nav.stop()
    spec = {**ENTITIES["customers"], "wsdl": f"{url}/WS/CRONUS/Page/Customer?wsdl"}
    with pytest.raises(
        SourceError, match=r"cannot load the WSDL: connection failed \(ConnectionError\)"
    ) as err:
        records(make_source(url, {"customers": spec}), "customers")
    assert err.value.retriable is True
