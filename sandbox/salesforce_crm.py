"""A loopback CRM imitating Salesforce's REST API for what concord pushes: OAuth2 token issue
(client credentials, or a JWT bearer assertion checked against a public key), sObject Collections
upsert by external id (`PATCH /services/data/vXX.X/composite/sobjects/{sobject}/{field}`, at most
200 records, `allOrNone`, one `{id, success, created, errors[]}` result per record in request
order), collection delete (`DELETE .../composite/sobjects?ids=`), reading one record by
external id, and SOQL of the one shape concord asks (`GET .../query?q=SELECT f, ... FROM
<sobject> WHERE <field> IN ('a', ...)`, `query_batch` records a page with `nextRecordsUrl`
and `done`). Record-level problems (a missing required Name, a too-long value, a rule a test adds
to `validators`) fail only that record with Salesforce's `{statusCode, message, fields}` errors;
a malformed request (over 200 records, a field the object lacks, a wrong type) fails whole with
400 and Salesforce's `[{message, errorCode}]` body. Tokens can be expired to exercise the 401
INVALID_SESSION_ID path. State lives in memory (`records`, `deleted`) for tests to inspect.
"""

from __future__ import annotations

import itertools
import re
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from sandbox.server import ApiError, LoopbackServer, Request, Response

MAX_RECORDS = 200
TOKEN_PATH = "/services/oauth2/token"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_DATA = re.compile(r"^/services/data/v\d+\.\d+(/.*)$")
_PREFIX = {"Account": "001", "Contact": "003"}
DEFAULT_FIELDS: dict[str, set[str]] = {
    "Account": {
        "Name",
        "Website",
        "Phone",
        "BillingCountry",
        "AnnualRevenue",
        "NumberOfEmployees",
        "Rating",
        "Concord_Id__c",
        "Superseded_By__c",
        "Lifetime_Revenue__c",
        "Open_Balance__c",
        "Value_Tier__c",
        "Churn_Risk__c",
        "Lifecycle_Stage__c",
        "Orders_Count__c",
        "Last_Order_Date__c",
        "ERP_Customer_Numbers__c",
    },
    "Contact": {
        "FirstName",
        "LastName",
        "Email",
        "Phone",
        "MailingCountry",
        "Concord_Id__c",
        "Superseded_By__c",
        "Lifetime_Revenue__c",
        "Value_Tier__c",
    },
}
REQUIRED: dict[str, str] = {"Account": "Name", "Contact": "LastName"}
_SOQL = re.compile(r"^SELECT (.+) FROM (\w+) WHERE (\w+) IN \((.*)\)$", re.IGNORECASE | re.DOTALL)
_LITERAL = re.compile(r"'((?:[^'\\]|\\.)*)'")


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


MAX_TEXT = 255

Validator = Callable[[str, dict[str, Any]], str | None]
"""(sobject, record fields) -> an error message for that record, or None when valid."""


def _sf_error(status: int, message: str, code: str) -> ApiError:
    return ApiError(status, message, errorCode=code)


class SalesforceServer(LoopbackServer):
    """Salesforce-like sandbox. `records[sobject][external id value]` holds the stored fields
    (with `Id`); `deleted` the ids deleted; `validators` extra per-record rules for tests."""

    def __init__(
        self,
        *,
        client_id: str = "sandbox-client",
        client_secret: str = "sandbox-secret",  # noqa: S107 - a sandbox credential
        username: str = "integration@example.com",
        jwt_public_key: str | None = None,
        fields: dict[str, set[str]] | None = None,
        port: int = 0,
        host: str = "127.0.0.1",
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.username = username
        self.jwt_public_key = jwt_public_key
        self.fields = {k: set(v) for k, v in (fields or DEFAULT_FIELDS).items()}
        self.records: dict[str, dict[str, dict[str, Any]]] = {k: {} for k in self.fields}
        self.deleted: set[str] = set()
        self.validators: list[Validator] = []
        self.tokens: set[str] = set()
        self.tokens_issued = 0
        self.query_batch = 2000
        self._cursors: dict[str, list[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._state = threading.Lock()
        super().__init__(token="unused", port=port, host=host)

    # -- auth ----------------------------------------------------------------------------------

    def _authorized(self, request: Request) -> bool:
        if request.path == TOKEN_PATH:
            return True
        given = request.headers.get("authorization", "")
        return given.startswith("Bearer ") and given[7:] in self.tokens

    def unauthorized(self) -> ApiError:
        return _sf_error(401, "Session expired or invalid", "INVALID_SESSION_ID")

    def expire_tokens(self) -> None:
        """Invalidate every issued token (as a session timeout does)."""
        self.tokens.clear()

    def issue_token(self) -> str:
        token = "00D" + secrets.token_hex(16)
        self.tokens.add(token)
        self.tokens_issued += 1
        return token

    def _token(self, request: Request) -> Response:
        form = dict(parse_qsl(request.body.decode("utf-8", "replace")))
        grant = form.get("grant_type")
        if grant == "client_credentials":
            if form.get("client_id") != self.client_id or (
                form.get("client_secret") != self.client_secret
            ):
                return Response(
                    400, {"error": "invalid_client", "error_description": "invalid client"}
                )
        elif grant == JWT_GRANT:
            problem = self._check_assertion(form.get("assertion", ""))
            if problem:
                return Response(400, {"error": "invalid_grant", "error_description": problem})
        else:
            return Response(
                400,
                {
                    "error": "unsupported_grant_type",
                    "error_description": "grant type not supported",
                },
            )
        return Response(
            200,
            {
                "access_token": self.issue_token(),
                "instance_url": self.url,
                "id": f"{self.url}/id/00D000000000001/005000000000001",
                "token_type": "Bearer",
                "issued_at": str(int(time.time() * 1000)),
                "signature": "sandbox",
            },
        )

    def _check_assertion(self, assertion: str) -> str | None:
        import jwt

        if self.jwt_public_key is None:
            return "JWT bearer flow not configured"
        try:
            claims = jwt.decode(
                assertion,
                self.jwt_public_key,
                algorithms=["RS256"],
                audience=self.url,
                options={"require": ["iss", "sub", "aud", "exp"]},
            )
        except jwt.PyJWTError as exc:
            return f"invalid assertion: {type(exc).__name__}"
        if claims.get("iss") != self.client_id:
            return "client identifier invalid"
        if claims.get("sub") != self.username:
            return "user hasn't approved this consumer"
        return None

    def error_response(self, error: ApiError) -> Response:
        code = error.extra.get("errorCode") or {
            400: "MALFORMED_QUERY",
            401: "INVALID_SESSION_ID",
            404: "NOT_FOUND",
            429: "REQUEST_LIMIT_EXCEEDED",
        }.get(error.status, "UNKNOWN_EXCEPTION")
        return Response(error.status, [{"message": error.message, "errorCode": code}])

    # -- routing -------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        if request.path == TOKEN_PATH and request.method == "POST":
            return self._token(request)
        match = _DATA.match(request.path)
        if not match:
            raise _sf_error(404, "The requested resource does not exist", "NOT_FOUND")
        parts = match.group(1).strip("/").split("/")
        if parts[:2] == ["composite", "sobjects"]:
            if request.method == "PATCH" and len(parts) == 4:
                return self._upsert(parts[2], parts[3], request.json())
            if request.method == "DELETE" and len(parts) == 2:
                return self._delete(request.query.get("ids", ""), request.query.get("allOrNone"))
        if request.method == "GET" and parts[0] == "sobjects" and len(parts) == 4:
            return self._read(parts[1], parts[2], parts[3])
        if request.method == "GET" and parts == ["query"]:
            return self._query(request.query.get("q", ""))
        if request.method == "GET" and parts[0] == "query" and len(parts) == 2:
            return self._query_page(parts[1])
        raise _sf_error(404, "The requested resource does not exist", "NOT_FOUND")

    # -- operations ----------------------------------------------------------------------------

    def _upsert(self, sobject: str, ext_field: str, body: Any) -> Response:
        known = self.fields.get(sobject)
        if known is None:
            raise _sf_error(404, f"The requested resource does not exist: {sobject}", "NOT_FOUND")
        if ext_field not in known:
            raise _sf_error(
                400,
                f"Provided external ID field does not exist or is not accessible: {ext_field}",
                "NOT_FOUND",
            )
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise _sf_error(
                400, "Json Deserialization failed: expected records", "JSON_PARSER_ERROR"
            )
        records: list[Any] = body["records"]
        if len(records) > MAX_RECORDS:
            raise _sf_error(
                400,
                "record limit reached. cannot submit more than 200 records into this call",
                "EXCEEDED_ID_LIMIT",
            )
        for record in records:
            if not isinstance(record, dict):
                raise _sf_error(400, "Json Deserialization failed", "JSON_PARSER_ERROR")
            if (record.get("attributes") or {}).get("type") != sobject:
                raise _sf_error(
                    400, f"sObject type in attributes must be {sobject}", "INVALID_TYPE"
                )
            for name, value in record.items():
                if name == "attributes":
                    continue
                if name not in known:
                    raise _sf_error(
                        400,
                        f"No such column '{name}' on sobject of type {sobject}",
                        "INVALID_FIELD",
                    )
                if isinstance(value, (dict, list)):
                    raise _sf_error(
                        400,
                        f"Cannot deserialize instance of {name} from a JSON structure",
                        "JSON_PARSER_ERROR",
                    )
        all_or_none = bool(body.get("allOrNone", False))
        with self._state:
            store = self.records[sobject]
            results: list[dict[str, Any]] = []
            pending: list[tuple[str, dict[str, Any], bool]] = []
            for record in records:
                fields = {k: v for k, v in record.items() if k != "attributes"}
                key = fields.get(ext_field)
                errors = self._record_errors(sobject, ext_field, fields, store.get(str(key)))
                if errors:
                    results.append({"success": False, "errors": errors})
                    continue
                existing = store.get(str(key))
                record_id = existing["Id"] if existing else self._new_id(sobject)
                pending.append((str(key), {**fields, "Id": record_id}, existing is None))
                results.append({"id": record_id, "success": True, "errors": [], "created": False})
            failed = any(not r["success"] for r in results)
            if all_or_none and failed:
                rolled = {
                    "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                    "message": "Record rolled back because not all records were valid and the "
                    "request was using AllOrNone header",
                    "fields": [],
                }
                return Response(
                    200,
                    [
                        r if not r["success"] else {"success": False, "errors": [rolled]}
                        for r in results
                    ],
                )
            done = iter(pending)
            for result in results:
                if not result["success"]:
                    continue
                key, fields, created = next(done)
                if created:
                    store[key] = fields
                else:
                    store[key].update(fields)
                result["created"] = created
        return Response(200, results)

    def _record_errors(
        self,
        sobject: str,
        ext_field: str,
        fields: dict[str, Any],
        existing: dict[str, Any] | None,
    ) -> list[dict[str, Any]]:
        errors: list[dict[str, Any]] = []
        if fields.get(ext_field) in (None, ""):
            errors.append(
                {
                    "statusCode": "REQUIRED_FIELD_MISSING",
                    "message": f"Required fields are missing: [{ext_field}]",
                    "fields": [ext_field],
                }
            )
        required = REQUIRED.get(sobject)
        if required and existing is None and fields.get(required) in (None, ""):
            errors.append(
                {
                    "statusCode": "REQUIRED_FIELD_MISSING",
                    "message": f"Required fields are missing: [{required}]",
                    "fields": [required],
                }
            )
        for name, value in fields.items():
            if isinstance(value, str) and len(value) > MAX_TEXT:
                errors.append(
                    {
                        "statusCode": "STRING_TOO_LONG",
                        "message": f"{name}: data value too large: {value[:20]}... "
                        f"(max length={MAX_TEXT})",
                        "fields": [name],
                    }
                )
        for validator in self.validators:
            message = validator(sobject, fields)
            if message:
                errors.append(
                    {
                        "statusCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                        "message": message,
                        "fields": [],
                    }
                )
        return errors

    def _delete(self, ids: str, all_or_none: str | None) -> Response:
        wanted = [i for i in ids.split(",") if i]
        if not wanted:
            raise _sf_error(400, "ids parameter is required", "MISSING_ARGUMENT")
        if len(wanted) > MAX_RECORDS:
            raise _sf_error(
                400,
                "record limit reached. cannot submit more than 200 records into this call",
                "EXCEEDED_ID_LIMIT",
            )
        results: list[dict[str, Any]] = []
        with self._state:
            for record_id in wanted:
                found = self._by_id(record_id)
                if found is None:
                    code = (
                        "ENTITY_IS_DELETED"
                        if record_id in self.deleted
                        else "INVALID_CROSS_REFERENCE_KEY"
                    )
                    results.append(
                        {
                            "id": record_id,
                            "success": False,
                            "errors": [
                                {"statusCode": code, "message": "entity is deleted", "fields": []}
                            ],
                        }
                    )
                    continue
                sobject, key = found
                del self.records[sobject][key]
                self.deleted.add(record_id)
                results.append({"id": record_id, "success": True, "errors": []})
        return Response(200, results)

    def _read(self, sobject: str, ext_field: str, value: str) -> Response:
        with self._state:
            found = self.records.get(sobject, {}).get(value)
            if found is None or found.get(ext_field) != value:
                raise _sf_error(404, "The requested resource does not exist", "NOT_FOUND")
            return Response(200, {"attributes": {"type": sobject}, **found})

    def _query(self, soql: str) -> Response:
        match = _SOQL.match(soql.strip())
        if not match:
            raise _sf_error(400, f"unsupported query: {soql[:80]}", "MALFORMED_QUERY")
        fields = [f.strip() for f in match.group(1).split(",")]
        sobject, where = match.group(2), match.group(3)
        known = self.fields.get(sobject)
        if known is None:
            raise _sf_error(400, f"sObject type '{sobject}' is not supported", "INVALID_TYPE")
        unknown = [f for f in [*fields, where] if f != "Id" and f not in known]
        if unknown:
            raise _sf_error(
                400, f"No such column '{unknown[0]}' on entity {sobject}", "INVALID_FIELD"
            )
        values = {_unquote(v) for v in _LITERAL.findall(match.group(4))}
        with self._state:
            rows = [
                {"attributes": {"type": sobject}, **{f: rec.get(f) for f in fields}}
                for rec in self.records[sobject].values()
                if str(rec.get(where)) in values
            ]
        cursor = f"01g{next(self._ids):015d}"
        self._cursors[cursor] = rows
        return self._query_page(f"{cursor}-0")

    def _query_page(self, locator: str) -> Response:
        cursor, _, offset_text = locator.partition("-")
        rows = self._cursors.get(cursor)
        if rows is None or not offset_text.isdigit():
            raise _sf_error(400, "invalid query locator", "INVALID_QUERY_LOCATOR")
        offset = int(offset_text)
        page = rows[offset : offset + self.query_batch]
        done = offset + len(page) >= len(rows)
        body: dict[str, Any] = {"totalSize": len(rows), "done": done, "records": page}
        if not done:
            body["nextRecordsUrl"] = f"/services/data/v62.0/query/{cursor}-{offset + len(page)}"
        return Response(200, body)

    def delete_record(self, sobject: str, external_id: str) -> None:
        """Delete a record by its external id value, as someone would in Salesforce's UI."""
        with self._state:
            record = self.records[sobject].pop(external_id)
            self.deleted.add(record["Id"])

    def _by_id(self, record_id: str) -> tuple[str, str] | None:
        for sobject, store in self.records.items():
            for key, fields in store.items():
                if fields["Id"] == record_id:
                    return sobject, key
        return None

    def _new_id(self, sobject: str) -> str:
        return f"{_PREFIX.get(sobject, 'a00')}{next(self._ids):012d}AAA"
