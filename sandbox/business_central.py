"""A loopback imitation of Dynamics 365 Business Central's API v2.0 and its OAuth2 token endpoint.

It follows Microsoft's documented shapes: ``POST /{tenant}/oauth2/v2.0/token`` (client
credentials, form-encoded) answers ``{"token_type": "Bearer", "expires_in": ..., "access_token":
...}``; ``GET /v2.0/{tenant}/{environment}/api/v2.0/companies({id})/{entitySet}`` answers
``{"@odata.context": ..., "value": [...]}`` with an absolute ``@odata.nextLink`` (carrying an
opaque ``$skiptoken``) while more records remain, the page size coming from ``Prefer:
odata.maxpagesize=N`` (default 20,000, echoed in ``Preference-Applied``). ``$filter`` accepts
comparisons (``eq ne gt ge lt le``) of a field with a date-time, a quoted string or a number,
joined with ``and``; ``$orderby`` and ``$expand=salesOrderLines`` are honoured; records are
served in (lastModifiedDateTime, id) order. Errors are OData JSON ``{"error": {"code",
"message"}}``; a missing, unknown or expired token gives 401. Amounts are JSON numbers, dates
``YYYY-MM-DD``, ``lastModifiedDateTime`` ISO 8601 with ``Z``; an empty ``currencyCode`` means the
company's local currency, as in Business Central.
"""

from __future__ import annotations

import base64
import random
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import orjson

from sandbox.server import ApiError, LoopbackServer, Request, Response

TENANT = "contoso-tenant"
ENVIRONMENT = "production"
CLIENT_ID = "concord-client"
CLIENT_SECRET = "bc-sandbox-secret"
DEFAULT_MAX_PAGE_SIZE = 20_000
ENTITY_SETS = ("customers", "salesOrders", "salesShipments", "salesInvoices", "customerPayments")
_NS = uuid.UUID("6f1c2d1e-0000-4000-8000-00000000bc20")
_CLAUSE = re.compile(r"^\s*(\w+)\s+(eq|ne|gt|ge|lt|le)\s+(.+?)\s*$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T[\d:.]+(Z|[+-]\d{2}:\d{2})$")
_MAX_PAGE = re.compile(r"odata\.maxpagesize=(\d+)")


def _iso(moment: datetime) -> str:
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def _guid(kind: str, n: int) -> str:
    return str(uuid.uuid5(_NS, f"{kind}:{n}"))


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class BusinessCentralData:
    """Deterministic records per entity set; ``touch`` changes one as a user edit would."""

    now: datetime
    records: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def generate(
        cls, *, customers: int = 25, seed: int = 3, now: datetime | None = None
    ) -> BusinessCentralData:
        rnd = random.Random(seed)
        now = now or datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
        data = cls(now=now, records={name: {} for name in ENTITY_SETS})
        tick = now - timedelta(days=200)

        def stamp() -> str:
            nonlocal tick
            tick += timedelta(minutes=rnd.randint(1, 600), milliseconds=rnd.randint(0, 999))
            return _iso(tick)

        for c in range(customers):
            cid = _guid("customer", c)
            data.records["customers"][cid] = {
                "id": cid,
                "number": f"C{10000 + c * 10}",
                "displayName": f"{rnd.choice(['Adatum', 'Fabrikam', 'Litware', 'Tailspin'])} "
                f"{rnd.choice(['Corporation', 'Inc.', 'GmbH', 'Ltd'])} {c}",
                "type": "Person" if c % 7 == 6 else "Company",
                "addressLine1": f"{c + 1} Main Street",
                "addressLine2": "",
                "city": rnd.choice(["Atlanta", "Chicago", "Miami", "Seattle"]),
                "state": "GA",
                "country": "US",
                "postalCode": f"{30000 + c}",
                "phoneNumber": f"+1 404 555 {1000 + c}",
                "email": f"accounts{c}@example.com" if c % 5 else "",
                "website": "",
                "taxLiable": True,
                "taxRegistrationNumber": "",
                "currencyCode": "EUR" if c % 4 == 0 else "",  # "" = local currency (USD)
                "blocked": " ",
                "balanceDue": 0,
                "lastModifiedDateTime": stamp(),
            }
        customer_ids = list(data.records["customers"])
        order_no = invoice_no = shipment_no = payment_no = 0
        for o in range(customers * 2):
            cust = data.records["customers"][customer_ids[o % customers]]
            oid = _guid("order", o)
            order_no += 1
            lines: list[dict[str, Any]] = []
            for n in range(1 + o % 3):
                qty = rnd.randint(1, 9)
                price = round(rnd.uniform(5, 250), 2)
                lines.append(
                    {
                        "id": _guid(f"line:{o}", n),
                        "documentId": oid,
                        "sequence": 10000 * (n + 1),
                        "lineType": "Item",
                        "lineObjectNumber": f"ITEM-{1000 + (o + n) % 17}",
                        "description": f"Item {(o + n) % 17}",
                        "quantity": qty,
                        "unitPrice": price,
                        "netAmount": round(qty * price, 2),
                    }
                )
            net = round(sum(line["netAmount"] for line in lines), 2)
            tax = round(net * 0.1, 2)
            ordered = (tick - timedelta(days=rnd.randint(0, 30))).date()
            order = {
                "id": oid,
                "number": f"S-ORD{101000 + order_no}",
                "externalDocumentNumber": "",
                "orderDate": ordered.isoformat(),
                "customerId": cust["id"],
                "customerNumber": cust["number"],
                "customerName": cust["displayName"],
                "currencyCode": cust["currencyCode"],
                "totalAmountExcludingTax": net,
                "totalTaxAmount": tax,
                "totalAmountIncludingTax": round(net + tax, 2),
                "fullyShipped": o % 3 != 0,
                "status": "Open" if o % 3 != 0 else "Draft",  # Open: released
                "lastModifiedDateTime": stamp(),
                "salesOrderLines": lines,
            }
            data.records["salesOrders"][oid] = order
            if o % 3 == 0:
                continue
            shipment_no += 1
            sid = _guid("shipment", o)
            data.records["salesShipments"][sid] = {
                "id": sid,
                "number": f"S-SHPT{102000 + shipment_no}",
                "orderNumber": order["number"],
                "customerId": cust["id"],
                "customerNumber": cust["number"],
                "postingDate": (ordered + timedelta(days=2)).isoformat(),
                "shipmentDate": (ordered + timedelta(days=2)).isoformat(),
                "lastModifiedDateTime": stamp(),
            }
            invoice_no += 1
            iid = _guid("invoice", o)
            paid = o % 2 == 0
            total = order["totalAmountIncludingTax"]
            data.records["salesInvoices"][iid] = {
                "id": iid,
                "number": f"S-INV{103000 + invoice_no}",
                "invoiceDate": (ordered + timedelta(days=2)).isoformat(),
                "postingDate": (ordered + timedelta(days=2)).isoformat(),
                "dueDate": (ordered + timedelta(days=32)).isoformat(),
                "customerId": cust["id"],
                "customerNumber": cust["number"],
                "orderId": oid,
                "orderNumber": order["number"],
                "currencyCode": cust["currencyCode"],
                "totalAmountExcludingTax": net,
                "totalTaxAmount": tax,
                "totalAmountIncludingTax": total,
                "remainingAmount": 0 if paid else total,
                "status": "Paid" if paid else "Open",
                "lastModifiedDateTime": stamp(),
            }
            if paid:
                payment_no += 1
                pid = _guid("payment", o)
                data.records["customerPayments"][pid] = {
                    "id": pid,
                    "journalDisplayName": "CASH",
                    "lineNumber": 10000 * payment_no,
                    "customerId": cust["id"],
                    "customerNumber": cust["number"],
                    "postingDate": (ordered + timedelta(days=20)).isoformat(),
                    "documentNumber": f"G{4000 + payment_no}",
                    "externalDocumentNumber": "",
                    "amount": total,
                    "appliesToInvoiceId": iid,
                    "appliesToInvoiceNumber": f"S-INV{103000 + invoice_no}",
                    "description": f"Payment {cust['displayName']}",
                    "comment": "",
                    "lastModifiedDateTime": stamp(),
                }
        return data

    def count(self, entity_set: str) -> int:
        return len(self.records[entity_set])

    def touch(self, entity_set: str, record_id: str, **changes: Any) -> dict[str, Any]:
        """Apply ``changes`` and move lastModifiedDateTime to now (an edit in the ERP)."""
        with self.lock:
            record = self.records[entity_set][record_id]
            record.update(changes)
            record["lastModifiedDateTime"] = _iso(datetime.now(UTC))
            return dict(record)

    def ordered(self, entity_set: str) -> list[dict[str, Any]]:
        with self.lock:
            rows = list(self.records[entity_set].values())
        return sorted(rows, key=lambda r: (r["lastModifiedDateTime"], r["id"]))


def _literal(text: str) -> Any:
    if text.startswith("'") and text.endswith("'"):
        return text[1:-1].replace("''", "'")
    if _DATETIME.match(text):
        return _parse_time(text)
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return date.fromisoformat(text)
    try:
        return float(text)
    except ValueError:
        raise ApiError(400, f"unsupported literal {text!r}", code="BadRequest") from None


def parse_filter(text: str) -> list[tuple[str, str, Any]]:
    """``a ge 2024-01-01T00:00:00Z and (b eq 'x')`` as (field, operator, value) clauses."""
    clauses = []
    for part in re.split(r"\s+and\s+", text.strip()):
        part = part.strip().removeprefix("(").removesuffix(")")
        match = _CLAUSE.match(part)
        if not match:
            raise ApiError(400, f"cannot parse $filter clause {part!r}", code="BadRequest")
        clauses.append((match.group(1), match.group(2), _literal(match.group(3))))
    return clauses


def _compare(value: Any, op: str, operand: Any) -> bool:
    if isinstance(operand, datetime):
        value = _parse_time(value)
    elif isinstance(operand, date):
        value = date.fromisoformat(value)
    ops = {
        "eq": value == operand,
        "ne": value != operand,
        "gt": value > operand,
        "ge": value >= operand,
        "lt": value < operand,
        "le": value <= operand,
    }
    return bool(ops[op])


class BusinessCentralServer(LoopbackServer):
    """Business Central API v2.0 for one tenant/environment/company, plus its token endpoint."""

    def __init__(
        self,
        data: BusinessCentralData | None = None,
        *,
        token_lifetime: int = 3599,
        port: int = 0,
        host: str = "127.0.0.1",
    ) -> None:
        self.data = data or BusinessCentralData.generate()
        self.company_id = _guid("company", 0)
        self.token_lifetime = token_lifetime
        self.tokens: dict[str, float] = {}  # token -> expiry (monotonic)
        self.token_requests = 0
        super().__init__(token=None, port=port, host=host)

    @property
    def api_url(self) -> str:
        """The company's API root, the base URL a source is configured with."""
        return f"{self.url}/v2.0/{TENANT}/{ENVIRONMENT}/api/v2.0/companies({self.company_id})"

    @property
    def token_url(self) -> str:
        return f"{self.url}/{TENANT}/oauth2/v2.0/token"

    def revoke_tokens(self) -> None:
        """Invalidate every issued token (the next API call gets 401)."""
        with self._lock:
            self.tokens.clear()

    def error_response(self, error: ApiError) -> Response:
        code = error.extra.get("code", "Internal_ServerError" if error.status >= 500 else "Error")
        return Response(error.status, {"error": {"code": code, "message": error.message}})

    def handle(self, request: Request) -> Response:
        if request.method == "POST" and request.path == f"/{TENANT}/oauth2/v2.0/token":
            return self._token(request)
        prefix = f"/v2.0/{TENANT}/{ENVIRONMENT}/api/v2.0/companies({self.company_id})/"
        if not request.path.startswith(prefix):
            raise ApiError(404, "resource not found", code="BadRequest_NotFound")
        self._check_bearer(request)
        entity_set = request.path[len(prefix) :].strip("/")
        counting = entity_set.endswith("/$count")
        entity_set = entity_set.removesuffix("/$count")
        if entity_set not in ENTITY_SETS:
            raise ApiError(404, f"no entity set {entity_set!r}", code="BadRequest_NotFound")
        if request.method != "GET":
            raise ApiError(405, "method not allowed", code="BadRequest_MethodNotAllowed")
        if counting:
            return self._count(entity_set, request)
        return self._list(entity_set, request)

    def _count(self, entity_set: str, request: Request) -> Response:
        """``GET <entity set>/$count``: how many records match ``$filter`` (a bare number)."""
        clauses = parse_filter(request.query["$filter"]) if request.query.get("$filter") else []
        try:
            total = sum(
                1
                for record in self.data.ordered(entity_set)
                if all(_compare(record[f], op, v) for f, op, v in clauses)
            )
        except KeyError as exc:
            raise ApiError(400, f"unknown property {exc.args[0]!r}", code="BadRequest") from None
        return Response(200, total)

    def _token(self, request: Request) -> Response:
        form = dict(parse_qsl(request.body.decode("utf-8", "replace")))
        self.token_requests += 1
        if form.get("grant_type") != "client_credentials":
            return Response(400, {"error": "unsupported_grant_type"})
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return Response(401, {"error": "invalid_client", "error_description": "AADSTS7000215"})
        token = secrets.token_urlsafe(24)
        with self._lock:
            self.tokens[token] = time.monotonic() + self.token_lifetime
        return Response(
            200,
            {
                "token_type": "Bearer",
                "expires_in": self.token_lifetime,
                "ext_expires_in": self.token_lifetime,
                "access_token": token,
            },
        )

    def _check_bearer(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        token = header[7:] if header.startswith("Bearer ") else ""
        with self._lock:
            expiry = self.tokens.get(token)
        if expiry is None or time.monotonic() >= expiry:
            raise ApiError(
                401,
                "The credentials provided are incorrect",
                code="Authentication_InvalidCredentials",
            )

    def _list(self, entity_set: str, request: Request) -> Response:
        query = request.query
        clauses = parse_filter(query["$filter"]) if query.get("$filter") else []
        after: tuple[str, str] | None = None
        if query.get("$skiptoken"):
            try:
                raw = base64.urlsafe_b64decode(query["$skiptoken"].encode())
                last = orjson.loads(raw)
                after = (str(last[0]), str(last[1]))
            except (ValueError, IndexError, TypeError):
                raise ApiError(400, "invalid $skiptoken", code="BadRequest") from None
        match = _MAX_PAGE.search(request.headers.get("prefer", ""))
        size = int(match.group(1)) if match else DEFAULT_MAX_PAGE_SIZE
        expand = query.get("$expand", "")
        rows: list[dict[str, Any]] = []
        more = False
        for record in self.data.ordered(entity_set):
            if after is not None and (record["lastModifiedDateTime"], record["id"]) <= after:
                continue
            try:
                if not all(_compare(record[f], op, v) for f, op, v in clauses):
                    continue
            except KeyError as exc:
                raise ApiError(
                    400, f"unknown property {exc.args[0]!r}", code="BadRequest"
                ) from None
            if len(rows) == size:
                more = True
                break
            rows.append(record)
        if entity_set == "salesOrders" and expand != "salesOrderLines":
            rows = [{k: v for k, v in r.items() if k != "salesOrderLines"} for r in rows]
        body: dict[str, Any] = {
            "@odata.context": f"{self.api_url}/$metadata#companies({self.company_id})/{entity_set}",
            "value": rows,
        }
        if more:
            last = rows[-1]
            token = base64.urlsafe_b64encode(
                orjson.dumps([last["lastModifiedDateTime"], last["id"]])
            ).decode()
            params = {k: v for k, v in query.items() if k != "$skiptoken"}
            params["$skiptoken"] = token
            body["@odata.nextLink"] = (
                f"{self.api_url}/{entity_set}?{urlencode(params, quote_via=quote, safe='$')}"
            )
        headers = {"OData-Version": "4.0"}
        if match:
            headers["Preference-Applied"] = f"odata.maxpagesize={size}"
        return Response(200, body, headers)
