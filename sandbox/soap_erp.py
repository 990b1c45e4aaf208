"""A loopback SOAP ERP modelled on Dynamics NAV page web services, serving a `NavDataset`.

`SoapErpServer` serves the pages Customer, SalesOrder (with its lines), CustLedgerEntry and
CashReceiptJournal in the shapes of the standard NAV 2015/2016 pages (`sandbox/wsdl/`). It
answers `GET /WS/CRONUS/Page/<Page>?wsdl` with the sandbox WSDL (its address rewritten to this
server) and `POST /WS/CRONUS/Page/<Page>` with SOAP 1.1 document/literal calls:
`ReadMultiple(filter[], bookmarkKey, setSize)` in primary-key order — records after the record
whose Key is `bookmarkKey`, at most `setSize`, an empty result at the end, as NAV does — and, on
CustLedgerEntry only, the sandbox extension `ReadByPage(filter[], pageNo, pageSize)`. Filters use a
subset of NAV's syntax: "" (all), exact values, `*` wildcards (`@` prefix: case-insensitive),
`<`, `<=`, `>`, `>=`, `<>`, ranges `a..b`, `a..`, `..b`, and alternatives `a|b`. Bad filters, bad
bookmarks and failed WS-Security logins answer SOAP Faults with HTTP 500, as NAV does; a wrong
HTTP Basic login answers 401. It uses its own stdlib HTTP server (the shared `LoopbackServer`
speaks JSON only), parses requests with DTDs and entities refused, logs nothing, and can inject
raw answers (`Injection`: any status and body, e.g. a 503, malformed XML or an XXE payload).
"""

from __future__ import annotations

import base64
import fnmatch
import hmac
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

from lxml import etree  # type: ignore[import-untyped]

from sandbox.nav_data import NavDataset
from sandbox.server import BackgroundServer, QuietHTTPServer

WSDL_DIR = Path(__file__).resolve().parent / "wsdl"
WSDL_FILES = {
    "Customer": "customer.wsdl",
    "SalesOrder": "sales_order.wsdl",
    "CustLedgerEntry": "cust_ledger_entry.wsdl",
    "CashReceiptJournal": "cash_receipt_journal.wsdl",
}
NAMESPACES = {
    "Customer": "urn:microsoft-dynamics-schemas/page/customer",
    "SalesOrder": "urn:microsoft-dynamics-schemas/page/salesorder",
    "CustLedgerEntry": "urn:microsoft-dynamics-schemas/page/custledgerentry",
    "CashReceiptJournal": "urn:microsoft-dynamics-schemas/page/cashreceiptjournal",
}
PREFIX = "/WS/CRONUS/Page/"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
DEFAULT_USER = "CONCORD"
DEFAULT_PASSWORD = "sandbox-nav-password"
MAX_SET_SIZE = 10_000
MAX_BODY_BYTES = 4 * 1024 * 1024
AuthMode = Literal["basic", "ws_security", "none"]

# field kinds per page, for typed filter comparison
_DATE_FIELDS = {
    "Last_Date_Modified",
    "Order_Date",
    "Posting_Date",
    "Document_Date",
    "Due_Date",
    "Shipment_Date",
    "Requested_Delivery_Date",
    "Promised_Delivery_Date",
}
_NUMBER_FIELDS = {"Entry_No", "Line_No", "Amount", "Amount_LCY", "Remaining_Amount"}

_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_comments=True
)


class SoapFault(Exception):
    """Answered as a SOAP Fault with HTTP 500 (NAV's way of reporting every error)."""

    def __init__(self, text: str, code: str = "a:Microsoft.Dynamics.Nav.Service.Fault") -> None:
        super().__init__(text)
        self.text, self.code = text, code


@dataclass
class Injection:
    """An injected raw answer for the next `times` requests whose path starts with `path`."""

    status: int = 503
    body: bytes = b"<html><body>Service Unavailable</body></html>"
    times: int = 1
    path: str | None = None
    content_type: str = "text/xml; charset=utf-8"


def fault_xml(text: str, code: str = "a:Microsoft.Dynamics.Nav.Service.Fault") -> bytes:
    return (
        f'<s:Envelope xmlns:s="{SOAP_ENV}"><s:Body><s:Fault>'
        f'<faultcode xmlns:a="urn:microsoft-dynamics-schemas/error">{escape(code)}</faultcode>'
        f'<faultstring xml:lang="en-US">{escape(text)}</faultstring>'
        f"<detail><string>{escape(text)}</string></detail>"
        f"</s:Fault></s:Body></s:Envelope>"
    ).encode()


def _element(name: str, value: Any) -> str:
    if value is None or value == "":
        return ""  # NAV leaves blank fields out
    if isinstance(value, bool):
        return f"<{name}>{'true' if value else 'false'}</{name}>"
    if isinstance(value, dict):
        inner = "".join(
            "".join(_record_body(item, key) for item in items) if isinstance(items, list) else ""
            for key, items in value.items()
        )
        return f"<{name}>{inner}</{name}>"
    return f"<{name}>{escape(str(value))}</{name}>"


def _record_body(record: dict[str, Any], tag: str) -> str:
    return f"<{tag}>{''.join(_element(k, v) for k, v in record.items())}</{tag}>"


# -- filters ------------------------------------------------------------------------------------


def _typed(field: str, text: str) -> Any:
    if field in _NUMBER_FIELDS:
        try:
            return Decimal(text)
        except InvalidOperation:
            raise SoapFault(f"The value '{text}' is not a valid number for {field}.") from None
    if field in _DATE_FIELDS:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            raise SoapFault(f"The value '{text}' is not a valid date for {field}.")
    return text


def compile_criteria(field: str, criteria: str) -> Callable[[Any], bool]:
    """A predicate for one NAV filter expression on `field` (see the module docstring)."""
    criteria = criteria.strip()
    if criteria == "":
        return lambda value: True
    alternatives = [_one_criterion(field, part.strip()) for part in criteria.split("|")]
    return lambda value: any(test(value) for test in alternatives)


def _one_criterion(field: str, text: str) -> Callable[[Any], bool]:
    def value_of(raw: Any) -> Any:
        if raw is None or raw == "":
            return None
        return _typed(field, str(raw))

    if ".." in text:
        low_text, _, high_text = text.partition("..")
        low = _typed(field, low_text) if low_text else None
        high = _typed(field, high_text) if high_text else None

        def in_range(raw: Any) -> bool:
            v = value_of(raw)
            return v is not None and (low is None or v >= low) and (high is None or v <= high)

        return in_range
    for op in ("<>", ">=", "<=", ">", "<"):
        if text.startswith(op):
            bound = _typed(field, text[len(op) :])
            compare: dict[str, Callable[[Any, Any], bool]] = {
                "<>": lambda a, b: a != b,
                ">=": lambda a, b: a >= b,
                "<=": lambda a, b: a <= b,
                ">": lambda a, b: a > b,
                "<": lambda a, b: a < b,
            }
            check = compare[op]
            return lambda raw: (v := value_of(raw)) is not None and check(v, bound)
    if "*" in text:
        insensitive = text.startswith("@")
        pattern = text[1:] if insensitive else text
        regex = re.compile(
            fnmatch.translate(pattern.replace("?", "[?]")), re.IGNORECASE if insensitive else 0
        )
        return lambda raw: raw is not None and regex.match(str(raw)) is not None
    exact = _typed(field, text)
    return lambda raw: value_of(raw) == exact


# -- server -------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "concord-nav-sandbox/1"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: requests may carry credentials."""

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        owner = cast(_Server, self.server).owner
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0 or length > MAX_BODY_BYTES:
            self._send(413, b"request too large", "text/plain")
            self.close_connection = True
            return
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, payload, content_type = owner.answer(self.command, self.path, headers, body)
        self._send(status, payload, content_type)

    def _send(self, status: int, payload: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        if status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="NAV"')
        self.end_headers()
        self.wfile.write(payload)


class _Server(QuietHTTPServer):
    def __init__(self, address: tuple[str, int], owner: SoapErpServer) -> None:
        self.owner = owner
        super().__init__(address, _Handler)


class SoapErpServer(BackgroundServer):
    """The NAV-like SOAP sandbox on a loopback port; a context manager that always stops it.

    `auth` is "basic" (HTTP Basic, 401 when wrong), "ws_security" (WS-Security UsernameToken with
    a text password, SOAP Fault when wrong) or "none". `requests` lists (method, path, operation)
    of every request; append `Injection`s to `injections` to replace the next answers.
    """

    def __init__(
        self,
        dataset: NavDataset,
        *,
        username: str = DEFAULT_USER,
        password: str = DEFAULT_PASSWORD,
        auth: AuthMode = "basic",
        port: int = 0,
        host: str = "127.0.0.1",
    ) -> None:
        self.dataset = dataset
        self.username, self.password, self.auth = username, password, auth
        self.requests: list[tuple[str, str, str]] = []
        self.injections: list[Injection] = []
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, int], bytes] = {}
        self._positions = {
            page: {rec["Key"]: i for i, rec in enumerate(rows)}
            for page, rows in dataset.pages.items()
        }
        self._httpd = _Server((host, port), self)
        self._start_serving(self._httpd, host)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def page_url(self, page: str) -> str:
        return f"{self.url}{PREFIX}{page}"

    def count(self, operation: str | None = None, method: str | None = None) -> int:
        with self._lock:
            return sum(
                1
                for m, _, op in self.requests
                if (operation is None or op == operation) and (method is None or m == method)
            )

    # -- dispatch -------------------------------------------------------------------------------

    def answer(
        self, method: str, raw_path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes, str]:
        split = urlsplit(raw_path)
        page = split.path[len(PREFIX) :].strip("/") if split.path.startswith(PREFIX) else ""
        operation = headers.get("soapaction", "").strip('"').rpartition(":")[2]
        with self._lock:
            self.requests.append((method, raw_path, operation if method == "POST" else "wsdl"))
            injection = next(
                (i for i in self.injections if i.path is None or split.path.startswith(i.path)),
                None,
            )
            if injection is not None:
                injection.times -= 1
                if injection.times <= 0:
                    self.injections.remove(injection)
        if injection is not None:
            return injection.status, injection.body, injection.content_type
        if page not in WSDL_FILES:
            return 404, b"not found", "text/plain"
        if self.auth == "basic" and not self._basic_ok(headers.get("authorization", "")):
            return 401, b"", "text/plain"
        if method == "GET":
            if split.query.lower() != "wsdl":
                return 404, b"not found", "text/plain"
            wsdl = (WSDL_DIR / WSDL_FILES[page]).read_text(encoding="utf-8")
            wsdl = re.sub(r'location="[^"]*"', f'location="{self.page_url(page)}"', wsdl)
            return 200, wsdl.encode(), "text/xml; charset=utf-8"
        if method != "POST":
            return 405, b"method not allowed", "text/plain"
        try:
            return 200, self._call(page, body), "text/xml; charset=utf-8"
        except SoapFault as fault:
            return 500, fault_xml(fault.text, fault.code), "text/xml; charset=utf-8"
        except Exception:  # a sandbox bug must still answer, as NAV does
            return 500, fault_xml("Internal error in the sandbox."), "text/xml; charset=utf-8"

    def _basic_ok(self, header: str) -> bool:
        expected = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return hmac.compare_digest(header.encode(), f"Basic {expected}".encode())

    def _call(self, page: str, body: bytes) -> bytes:
        if b"<!DOCTYPE" in body:
            raise SoapFault("DTDs are not allowed in requests.")
        try:
            envelope = etree.fromstring(body, _PARSER)
        except etree.XMLSyntaxError as exc:
            raise SoapFault(f"The request is not well-formed XML: {exc}") from None
        if self.auth == "ws_security" and not self._wsse_ok(envelope):
            raise SoapFault(
                "The server has rejected the client credentials.", code="s:InvalidSecurity"
            )
        call = envelope.find(f"{{{SOAP_ENV}}}Body/*")
        if call is None:
            raise SoapFault("The SOAP body is empty.")
        ns = NAMESPACES[page]
        operation = etree.QName(call).localname
        if etree.QName(call).namespace != ns:
            raise SoapFault(f"Operation {call.tag} is not defined for page {page}.")
        filters = [
            (f.findtext(f"{{{ns}}}Field") or "", f.findtext(f"{{{ns}}}Criteria") or "")
            for f in call.findall(f"{{{ns}}}filter")
        ]
        if not filters:
            raise SoapFault("At least one filter element is required.")
        rows = self._filtered(page, filters)
        if operation == "ReadMultiple":
            size = _int_arg(call, ns, "setSize")
            bookmark = call.findtext(f"{{{ns}}}bookmarkKey") or ""
            start = 0
            if bookmark:
                position = self._positions[page].get(bookmark)
                if position is None:
                    raise SoapFault(f"The bookmark key '{bookmark[:40]}' is not valid.")
                start = next((i for i, (p, _) in enumerate(rows) if p > position), len(rows))
            chosen = rows[start : start + size]
        elif operation == "ReadByPage" and page == "CustLedgerEntry":
            number = _int_arg(call, ns, "pageNo")
            size = _int_arg(call, ns, "pageSize")
            chosen = rows[(number - 1) * size : number * size]
        else:
            raise SoapFault(f"Operation {operation} is not defined for page {page}.")
        return self._render(page, operation, ns, chosen)

    def _wsse_ok(self, envelope: Any) -> bool:
        token = envelope.find(f".//{{{WSSE}}}UsernameToken")
        if token is None:
            return False
        user = token.findtext(f"{{{WSSE}}}Username") or ""
        password = token.findtext(f"{{{WSSE}}}Password") or ""
        return hmac.compare_digest(user.encode(), self.username.encode()) and hmac.compare_digest(
            password.encode(), self.password.encode()
        )

    def _filtered(self, page: str, filters: list[tuple[str, str]]) -> list[tuple[int, Any]]:
        rows = self.dataset.pages[page]
        if not rows:
            return []
        known = set(rows[0])
        tests = []
        for field, criteria in filters:
            if field not in known or field in ("Key", "SalesLines"):
                raise SoapFault(f"The field '{field}' cannot be used in a filter on {page}.")
            if criteria.strip():
                tests.append((field, compile_criteria(field, criteria)))
        if not tests:
            return list(enumerate(rows))
        return [
            (i, rec) for i, rec in enumerate(rows) if all(test(rec.get(f)) for f, test in tests)
        ]

    def _render(self, page: str, operation: str, ns: str, chosen: list[tuple[int, Any]]) -> bytes:
        parts = [
            f'<Soap:Envelope xmlns:Soap="{SOAP_ENV}"><Soap:Body>'
            f'<{operation}_Result xmlns="{ns}"><{operation}_Result>'.encode()
        ]
        for position, record in chosen:
            cached = self._cache.get((page, position))
            if cached is None:
                cached = _record_body(record, page).encode()
                self._cache[(page, position)] = cached
            parts.append(cached)
        parts.append(
            f"</{operation}_Result></{operation}_Result></Soap:Body></Soap:Envelope>".encode()
        )
        if not chosen:  # NAV answers an empty result without the inner list element
            return (
                f'<Soap:Envelope xmlns:Soap="{SOAP_ENV}"><Soap:Body>'
                f'<{operation}_Result xmlns="{ns}"/></Soap:Body></Soap:Envelope>'
            ).encode()
        return b"".join(parts)


def _int_arg(call: Any, ns: str, name: str) -> int:
    text = call.findtext(f"{{{ns}}}{name}")
    try:
        value = int(text or "")
    except ValueError:
        raise SoapFault(f"{name} must be a number, got '{text}'.") from None
    if value < 1 or value > MAX_SET_SIZE:
        raise SoapFault(f"{name} must be between 1 and {MAX_SET_SIZE}.")
    return value
