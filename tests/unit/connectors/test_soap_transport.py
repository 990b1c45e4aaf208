"""Credentials of a SOAP source reach only its configured origins; TLS options reach the session."""

from __future__ import annotations

import requests
from requests.auth import HTTPBasicAuth

from connectors.erp.soap_transport import TlsSettings, build_session
from connectors.http import origin


def prepared(url: str, session: requests.Session) -> requests.PreparedRequest:
    return session.prepare_request(requests.Request("POST", url, data=b"<x/>"))


def test_basic_credentials_go_to_configured_origins_only() -> None:
    origins = {origin("http://127.0.0.1:8703")}
    session = build_session(TlsSettings(), HTTPBasicAuth("u", "p"), origins)
    assert "Authorization" in prepared("http://127.0.0.1:8703/WS/Page/Customer", session).headers
    assert "Authorization" not in prepared("http://127.0.0.1:9999/x", session).headers
    assert "Authorization" not in prepared("https://127.0.0.1:8703/x", session).headers


def test_origins_learnt_later_are_honoured() -> None:
    origins: set[tuple[str, str, int | None]] = set()
    session = build_session(TlsSettings(), HTTPBasicAuth("u", "p"), origins)
    assert "Authorization" not in prepared("http://127.0.0.1:8703/x", session).headers
    origins.add(origin("http://127.0.0.1:8703"))
    assert "Authorization" in prepared("http://127.0.0.1:8703/x", session).headers


def test_tls_settings_reach_the_session() -> None:
    assert build_session(TlsSettings(), None, set()).verify is True
    assert build_session(TlsSettings(ca_bundle="/etc/ca.pem"), None, set()).verify == "/etc/ca.pem"
    assert build_session(TlsSettings(verify=False), None, set()).verify is False
    mtls = build_session(TlsSettings(client_cert="c.pem", client_key="k.pem"), None, set())
    assert mtls.cert == ("c.pem", "k.pem")
