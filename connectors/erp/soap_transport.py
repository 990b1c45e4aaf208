"""zeep's transport over the HTTP kit: the SOAP source's one client, for WSDLs and calls alike.

``soap_http`` builds the kit's client for a SOAP source: the configured origins only (base URL,
absolute addresses, WSDL URLs; never an address learnt from a WSDL), the source's ``http``
settings (retries, rate limit, size cap, TLS) and its HTTP credentials. ``KitTransport`` hands
zeep every download (WSDL, imported XSDs) and call through that client, so zeep has no HTTP
stack of its own. A SOAP call's answers are 200 and 500 (a Fault travels in a 500's body).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import requests
from zeep import Transport
from zeep.cache import InMemoryCache

from connectors.http import AuthStyle, HttpClient, HttpResponse, HttpSettings, Side

SOAP_ANSWERS = frozenset({200, 500})
"""A SOAP call's answers: a result, or a Fault in a 500."""


def soap_http(
    source: str, settings: HttpSettings, auth: AuthStyle | None, origins: Iterable[str]
) -> HttpClient:
    """The kit's client of one SOAP source, allowed only ``origins`` (configured URLs)."""
    return HttpClient(
        Side.source(source),
        None,
        auth=auth,
        settings=settings,
        also_allowed=origins,
        accept="text/xml, application/soap+xml",
    )


class KitTransport(Transport):  # type: ignore[misc]
    """A zeep ``Transport`` whose every request goes through one ``HttpClient``."""

    def __init__(self, http: HttpClient, *, cache_seconds: int) -> None:
        super().__init__(
            cache=InMemoryCache(timeout=cache_seconds),  # type: ignore[no-untyped-call]
            timeout=http.settings.timeout,
            operation_timeout=http.settings.timeout,
            session=http.session,
        )
        http.session.headers["User-Agent"] = "concord/0.1 (soap)"  # zeep sets its own
        self.http = http

    def _load_remote_data(self, url: str) -> bytes:
        """A WSDL or schema document (zeep caches it)."""
        return self.http.request("GET", url, parse_json=False, what="cannot load the WSDL").body

    def get(self, address: str, params: Any, headers: Any) -> requests.Response:
        """A GET for zeep's HTTP bindings."""
        return _as_response(
            self.http.request("GET", address, params=params, headers=headers, parse_json=False)
        )

    def post(self, address: str, message: Any, headers: Any) -> requests.Response:
        """A SOAP call for zeep's own service proxies."""
        content = message.encode() if isinstance(message, str) else message
        return _as_response(
            self.http.request(
                "POST",
                address,
                content=content,
                headers=headers,
                parse_json=False,
                ok_status=SOAP_ANSWERS,
            )
        )


def _as_response(answer: HttpResponse) -> requests.Response:
    """The kit's answer as the ``requests.Response`` zeep reads."""
    resp = requests.Response()
    resp.status_code = answer.status
    resp.headers = answer.headers
    resp._content = answer.body
    resp.url = answer.url
    return resp
