"""Salesforce target: upsert Accounts (and Contacts for persons) by an external id field.

Uses sObject Collections upsert (``PATCH /services/data/vXX.X/composite/sobjects/<SObject>/
<ExtId>``, at most 200 records a call, ``allOrNone=false``): Salesforce answers one result per
record in request order, so a bad record fails alone with Salesforce's own status code and message.
A request refused whole (400: a field the object lacks, a malformed value) is split in halves until
the bad records stand alone. Customers merged by identity resolution are either marked (the
absorbed record's ``Superseded_By__c`` set to the survivor's concord id, ``merge_mode: mark``) or
deleted (``merge_mode: delete``, collection delete by record id), never left as a live duplicate.
Records are read back for a resync with SOQL by external id (``GET .../query?q=SELECT ... WHERE
<ExtId> IN (...)``, 200 ids a query, following ``nextRecordsUrl``). Auth: OAuth2 client
credentials or JWT bearer (``connectors.crm.salesforce_auth``); a 401 renews the token once.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from concord.contracts import (
    ObjectKind,
    PushOutcome,
    PushRecord,
    RemoteRecord,
    Supersession,
    TargetConfig,
)
from concord.errors import PushError
from connectors.crm.base import (
    CrmAuth,
    CrmClient,
    bisect,
    chunks,
    error_body,
    jsonable,
    parse_settings,
)
from connectors.http import HttpSettings, NoAuth

MAX_RECORDS = 200
GONE = frozenset({"ENTITY_IS_DELETED"})
FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def soql_literal(value: str) -> str:
    """A SOQL string literal: quoted, with backslashes and quotes escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class SalesforceSettings(BaseModel):
    """The Salesforce target section: instance URL, auth, sObjects, external ids, merge mode."""

    model_config = ConfigDict(extra="forbid")

    instance_url: str = Field(pattern=r"^https?://", description="the org's My Domain URL")
    api_version: str = Field(default="v62.0", pattern=r"^v\d+\.\d$")
    auth: CrmAuth = Field(default_factory=NoAuth)
    http: HttpSettings = Field(default_factory=HttpSettings)
    sobject: str = "Account"
    external_id_field: str = "Concord_Id__c"
    person_sobject: str = "Contact"
    person_external_id_field: str | None = None
    merge_mode: Literal["mark", "delete"] = "mark"
    superseded_field: str = "Superseded_By__c"


class SalesforceTarget:
    """A ``Target`` writing to Salesforce's sObject Collections endpoints."""

    max_batch = MAX_RECORDS
    default_batch = MAX_RECORDS

    def __init__(self, name: str, settings: SalesforceSettings) -> None:
        self.name = name
        self.settings = settings
        self.client = CrmClient(name, settings.instance_url, settings.auth, settings.http)
        self.base = f"/services/data/{settings.api_version}/composite/sobjects"

    @classmethod
    def validate(cls, config: TargetConfig) -> None:
        """Check the section's settings."""
        parse_settings(SalesforceSettings, config)

    @classmethod
    def from_config(cls, config: TargetConfig) -> SalesforceTarget:
        """Build from the config section; the OAuth token is fetched at the first call."""
        return cls(config.name, parse_settings(SalesforceSettings, config))

    @classmethod
    def merge_action(cls, config: TargetConfig) -> str:
        """``mark`` (set the superseded field) or ``delete``, per ``merge_mode``."""
        return parse_settings(SalesforceSettings, config).merge_mode

    @classmethod
    def merge_calls(cls, config: TargetConfig, merges: int) -> int:
        """Marks and deletes both go 200 to a call."""
        return math.ceil(merges / MAX_RECORDS)

    @property
    def calls(self) -> int:
        """API calls made so far."""
        return self.client.calls

    def close(self) -> None:
        """Close the HTTP session."""
        self.client.close()

    def _sobject(self, kind: str) -> tuple[str, str]:
        s = self.settings
        if kind == "person":
            return s.person_sobject, s.person_external_id_field or s.external_id_field
        return s.sobject, s.external_id_field

    def push(self, records: Sequence[PushRecord]) -> list[PushOutcome]:
        """Upsert by external id, 200 a call; one outcome per record, in order."""
        out: dict[str, PushOutcome] = {}
        by_kind: dict[str, list[PushRecord]] = {}
        for r in records:
            by_kind.setdefault(r.object_type, []).append(r)
        for kind, group in by_kind.items():
            sobject, ext = self._sobject(kind)

            def send(
                batch: Sequence[PushRecord], so: str = sobject, field: str = ext
            ) -> list[PushOutcome]:
                return self._upsert(so, field, [(r.key, r.properties) for r in batch])

            for chunk in chunks(group, MAX_RECORDS):
                for outcome in bisect(chunk, send, _describe):
                    out[outcome.key] = outcome
        return [
            out.get(r.key) or PushOutcome(r.key, ok=False, error="missing in Salesforce's answer")
            for r in records
        ]

    def _upsert(
        self, sobject: str, ext: str, rows: Sequence[tuple[str, dict[str, Any]]]
    ) -> list[PushOutcome]:
        body = {
            "allOrNone": False,
            "records": [
                {"attributes": {"type": sobject}, **jsonable(props), ext: key}
                for key, props in rows
            ],
        }
        resp = self.client.request("PATCH", f"{self.base}/{sobject}/{ext}", json=body)
        results = resp.data if isinstance(resp.data, list) else []
        if len(results) != len(rows):
            raise PushError(
                f"expected {len(rows)} results, got {len(results)}",
                target=self.name,
                url=f"{self.base}/{sobject}/{ext}",
                status=resp.status,
            )
        return [
            PushOutcome(key, ok=True, remote_id=str(res.get("id")))
            if res.get("success")
            else PushOutcome(key, ok=False, error=_record_errors(res))
            for (key, _), res in zip(rows, results, strict=True)
        ]

    def read(
        self, object_type: ObjectKind, keys: Sequence[str], properties: Sequence[str]
    ) -> list[RemoteRecord]:
        """The records Salesforce holds for ``keys``, by SOQL on the external id field."""
        sobject, ext = self._sobject(object_type)
        fields = sorted({"Id", ext, *properties})
        bad = [f for f in fields if not FIELD_NAME.match(f)]
        if bad:
            raise PushError(f"not a Salesforce field name: {', '.join(bad)}", target=self.name)
        found: list[RemoteRecord] = []
        path = f"/services/data/{self.settings.api_version}/query"
        for chunk in chunks(list(keys), MAX_RECORDS):
            soql = (  # names checked against FIELD_NAME, values escaped literals
                f"SELECT {', '.join(fields)} FROM {sobject} WHERE {ext} IN "  # noqa: S608
                f"({', '.join(soql_literal(k) for k in chunk)})"
            )
            url, params = path, {"q": soql}  # the next pages' URLs carry their own locator
            while True:
                resp = self.client.request("GET", url, params=params)
                data = resp.data if isinstance(resp.data, dict) else {}
                for rec in data.get("records") or []:
                    props = {k: v for k, v in rec.items() if k != "attributes"}
                    if props.get(ext) is not None:
                        key, remote = str(props[ext]), str(props.get("Id"))
                        found.append(RemoteRecord(key, object_type, remote, props))
                following = data.get("nextRecordsUrl")
                if data.get("done", True) or not following:
                    break
                url, params = str(following), {}
        return found

    def supersede(self, items: Sequence[Supersession]) -> list[PushOutcome]:
        """Mark each absorbed record with its survivor, or delete it (``merge_mode``)."""
        if self.settings.merge_mode == "delete":
            return self._delete(items)
        out: list[PushOutcome] = []
        by_kind: dict[str, list[Supersession]] = {}
        for s in items:
            by_kind.setdefault(s.object_type, []).append(s)
        for kind, group in by_kind.items():
            sobject, ext = self._sobject(kind)
            for i in range(0, len(group), MAX_RECORDS):
                part = group[i : i + MAX_RECORDS]
                out.extend(
                    self._upsert(
                        sobject,
                        ext,
                        [(s.absorbed, {self.settings.superseded_field: s.survivor}) for s in part],
                    )
                )
        return out

    def _delete(self, items: Sequence[Supersession]) -> list[PushOutcome]:
        out: list[PushOutcome] = []
        for i in range(0, len(items), MAX_RECORDS):
            part = items[i : i + MAX_RECORDS]
            ids = ",".join(str(s.absorbed_remote_id) for s in part)
            resp = self.client.request(
                "DELETE", self.base, params={"ids": ids, "allOrNone": "false"}
            )
            results = {
                str(r.get("id")): r for r in (resp.data if isinstance(resp.data, list) else [])
            }
            for s in part:
                res = results.get(str(s.absorbed_remote_id))
                codes = {e.get("statusCode") for e in (res or {}).get("errors") or []}
                if res is not None and (res.get("success") or (codes <= GONE and codes)):
                    out.append(PushOutcome(s.absorbed, ok=True))
                else:
                    error = _record_errors(res) if res else "missing in Salesforce's answer"
                    out.append(PushOutcome(s.absorbed, ok=False, error=error))
        return out


def _record_errors(result: dict[str, Any]) -> str:
    """Salesforce's per-record errors as one line: ``CODE: message (fields)``."""
    parts = []
    for err in result.get("errors") or []:
        fields = ", ".join(err.get("fields") or [])
        parts.append(
            f"{err.get('statusCode', 'ERROR')}: {err.get('message', '')}"
            + (f" ({fields})" if fields else "")
        )
    return "; ".join(parts) or "rejected without a message"


def _describe(exc: PushError) -> str:
    body = error_body(exc)
    if isinstance(body, list) and body and isinstance(body[0], dict):
        return f"HTTP {exc.status} " + "; ".join(
            f"{e.get('errorCode', 'ERROR')}: {e.get('message', '')}" for e in body
        )
    return exc.message
