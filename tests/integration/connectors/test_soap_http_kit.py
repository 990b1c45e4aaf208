"""The SOAP source on the HTTP kit: credentials and requests never reach a host named only by a
WSDL (a second NAV-like listener receives nothing), and the ``http`` settings a REST source obeys
hold for SOAP too (rate limit, TLS, the size pre-check)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from concord.errors import ConfigError, SourceError
from sandbox.nav_data import NavDataset
from sandbox.soap_erp import DEFAULT_PASSWORD, DEFAULT_USER, SoapErpServer
from tests.integration.connectors import test_soap_source as soap
from tests.integration.connectors.test_soap_source import (
    ENTITIES,
    NAV_PASSWORD_ENV,
    make_source,
    records,
)

REPO = Path(__file__).resolve().parents[3]
CUSTOMER = "/WS/CRONUS/Page/Customer"
dataset = soap.dataset  # the NAV data and server of the SOAP source's tests
nav = soap.nav


@pytest.fixture
def other(dataset: NavDataset) -> Iterator[SoapErpServer]:
    """A second NAV on another port: it would answer anyone who called it."""
    with SoapErpServer(dataset) as server:
        yield server


@pytest.fixture
def ws_other(dataset: NavDataset) -> Iterator[SoapErpServer]:
    with SoapErpServer(dataset, auth="ws_security") as server:
        yield server


def wsdl_naming(folder: Path, address: str) -> Path:
    """The customer WSDL with its soap:address pointing at ``address``."""
    text = (REPO / "sandbox/wsdl/customer.wsdl").read_text()
    path = folder / "customer.wsdl"
    path.write_text(re.sub(r'location="[^"]*"', f'location="{address}"', text))
    return path


@pytest.fixture
def wsdl_host(tmp_path: Path) -> Iterator[str]:
    """A plain file server for WSDLs (a configured URL, like NAV's ?wsdl)."""
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    )
    server.RequestHandlerClass.log_message = lambda *a: None  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def soap_dataset_rows(server: SoapErpServer) -> list[dict[str, Any]]:
    return server.dataset.pages["Customer"]


def customers_without_address(wsdl: str, **extra: Any) -> dict[str, dict[str, Any]]:
    spec = {**ENTITIES["customers"], "wsdl": wsdl, **extra}
    spec.pop("address")
    return {"customers": spec}


def test_the_configured_address_is_used_even_when_the_wsdl_names_a_listed_origin(
    nav: SoapErpServer, other: SoapErpServer, tmp_path: Path
) -> None:
    # the second listener is a configured origin, but only the WSDL names it as the service
    wsdl = wsdl_naming(tmp_path, f"{other.url}{CUSTOMER}")
    spec = {**ENTITIES["customers"], "wsdl": str(wsdl)}
    source = make_source(nav.url, {"customers": spec}, allowed_origins=[other.url])
    assert len(records(source, "customers")) == len(soap_dataset_rows(nav))
    assert other.requests == []  # not a call, not a password
    assert nav.count("ReadMultiple") > 0


def test_a_wsdl_address_is_used_only_when_asked_and_its_origin_listed(
    nav: SoapErpServer, other: SoapErpServer, tmp_path: Path
) -> None:
    wsdl = wsdl_naming(tmp_path, f"{other.url}{CUSTOMER}")
    spec = customers_without_address(str(wsdl), wsdl_address=True)
    assert records(make_source(nav.url, spec, allowed_origins=[other.url]), "customers")
    assert other.count("ReadMultiple") > 0 and nav.requests == []


def test_a_file_wsdl_without_an_address_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"sources\.nav\.entities\.customers\.address"):
        make_source("http://127.0.0.1:9", customers_without_address("sandbox/wsdl/customer.wsdl"))


def test_a_wsdl_naming_another_host_gets_it_nothing(
    nav: SoapErpServer, other: SoapErpServer, tmp_path: Path
) -> None:
    wsdl = wsdl_naming(tmp_path, f"{other.url}{CUSTOMER}")
    source = make_source(nav.url, customers_without_address(str(wsdl), wsdl_address=True))
    with pytest.raises(SourceError, match=r"soap:address .* is not on a configured origin") as err:
        records(source, "customers")
    assert f"127.0.0.1:{other.port}" in str(err.value)
    assert err.value.retriable is False
    assert other.requests == []  # not a call, not a password
    assert nav.requests == []


def test_a_wsdl_url_binds_to_its_own_url_not_the_address_inside(
    nav: SoapErpServer, other: SoapErpServer, tmp_path: Path, wsdl_host: str
) -> None:
    # the WSDL file served by a plain host names the second listener: the service is bound to
    # the WSDL's URL (NAV's convention: the page's URL + ?wsdl), so the listener gets nothing
    wsdl_naming(tmp_path, f"{other.url}{CUSTOMER}")
    spec = customers_without_address(f"{wsdl_host}/customer.wsdl")
    with pytest.raises(SourceError, match=r"HTTP 501|HTTP 405|status 50|gave up|refused"):
        records(make_source(nav.url, spec), "customers")
    assert other.requests == []
    spec = customers_without_address(f"{wsdl_host}/customer.wsdl", wsdl_address=True)
    with pytest.raises(SourceError, match="is not on a configured origin"):
        records(make_source(nav.url, spec), "customers")
    assert other.requests == []


def test_ws_security_credentials_in_the_envelope_do_not_leave_either(
    ws_other: SoapErpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(NAV_PASSWORD_ENV, DEFAULT_PASSWORD)
    auth = {"type": "ws_security", "username": DEFAULT_USER, "password": {"env": NAV_PASSWORD_ENV}}
    wsdl = wsdl_naming(tmp_path, f"{ws_other.url}{CUSTOMER}")
    spec = customers_without_address(str(wsdl), wsdl_address=True)
    source = make_source("http://127.0.0.1:9", spec, auth=auth)
    with pytest.raises(SourceError, match="is not on a configured origin"):
        records(source, "customers")
    assert ws_other.requests == []


def test_a_configured_address_or_wsdl_url_on_the_service_host_is_used(
    nav: SoapErpServer,
) -> None:
    spec = customers_without_address(f"{nav.url}{CUSTOMER}?wsdl")  # the WSDL's origin: configured
    assert records(make_source(nav.url, spec), "customers")
    assert all(path.startswith(CUSTOMER) for _, path, _ in nav.requests)


def test_zeeps_own_service_calls_go_through_the_kit(nav: SoapErpServer) -> None:
    source = make_source(nav.url)
    call = source._call("customers")
    result = call.service.ReadMultiple(filter=[{"Field": "No", "Criteria": ""}], setSize=3)
    assert len(result) == 3 and nav.count("ReadMultiple") == 1
    other = call.client.create_service(call.service._binding.name, "http://127.0.0.1:9/x")
    with pytest.raises(SourceError, match="refusing to send to another host"):
        other.ReadMultiple(filter=[{"Field": "No", "Criteria": ""}], setSize=3)


def test_requests_per_second_limits_a_soap_source(nav: SoapErpServer) -> None:
    source = make_source(nav.url, http={"requests_per_second": 2, "timeout": 10})
    waits: list[float] = []
    source.http.limiter.sleep = waits.append
    got = records(source, "customers")
    assert got and nav.count("ReadMultiple") >= 3
    assert len(waits) >= nav.count("ReadMultiple") - 1  # every call after the first waited
    assert source.http.limiter.per_second == 2


def test_tls_is_one_http_setting_and_the_old_key_still_reads(nav: SoapErpServer) -> None:
    assert make_source(nav.url).session.verify is True
    off = make_source(nav.url, http={"tls": {"verify": False}})
    assert off.session.verify is False
    bundle = make_source(nav.url, http={"tls": {"ca_bundle": "/etc/ssl/ca.pem"}})
    assert bundle.session.verify == "/etc/ssl/ca.pem"
    assert make_source(nav.url, tls={"verify": False}).session.verify is False
    assert make_source(nav.url, http={"verify_tls": False}).session.verify is False


def test_an_answer_over_the_size_cap_is_refused_by_its_declared_length(
    nav: SoapErpServer,
) -> None:
    source = make_source(nav.url, http={"max_response_bytes": 1024, "timeout": 10})
    with pytest.raises(SourceError, match=r"response of \d+ bytes exceeds max_response_bytes"):
        records(source, "customers")
