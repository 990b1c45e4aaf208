"""HubSpot CRM v3 target: batch upsert of companies (and contacts for persons) by a unique property.

At most 100 inputs a call and every property value a string (HubSpot's rules; the outbound mapping
stringifies); an empty value is left out (``on_null: keep``) so it never clears what HubSpot holds.
Each input carries an ``objectWriteTraceId`` (the concord id) so HubSpot can answer 207
Multi-Status with per-input errors instead of refusing the whole batch; a batch refused whole
(400 VALIDATION_ERROR) is split in halves until the bad inputs stand alone, and one refused as
too large lowers the batch size for the rest of the run. A 2xx means every input was written:
results are matched to inputs by the id property, else ``objectWriteTraceId``, else the ids are
read back with ``batch/read`` (the v3 spec promises neither echo nor order). Customers merged by
identity resolution are merged in HubSpot too (``POST /crm/v3/objects/{type}/merge``), so the
absorbed record disappears into the survivor instead of staying as a duplicate. Records are read
back for a resync with ``POST /crm/v3/objects/{type}/batch/read`` by the id property (at most 100
inputs a call; ids HubSpot does not hold come back as a 207 error item, or a 404 when none
exists). 429 and ``Retry-After`` are honoured by the shared HTTP client, under
``http.requests_per_second``. Auth: a private-app token (``bearer``) or the OAuth2 refresh-token
grant.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from concord.contracts import (
    ObjectKind,
    PropertySpec,
    PropertyState,
    PushOutcome,
    PushRecord,
    RemoteRecord,
    Supersession,
    TargetConfig,
)
from concord.errors import PushError
from connectors.crm.base import (
    BatchLimit,
    CrmAuth,
    CrmClient,
    chunks,
    error_body,
    is_call_failure,
    parse_settings,
)
from connectors.http import HttpSettings, NoAuth

ObjectType = Literal["companies", "contacts"]


class HubSpotSettings(BaseModel):
    """The HubSpot target section: API URL, auth, object types and id properties."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(default="https://api.hubapi.com", pattern=r"^https?://")
    auth: CrmAuth = Field(default_factory=NoAuth)
    http: HttpSettings = Field(default_factory=HttpSettings)
    object_type: ObjectType = "companies"
    id_property: str = "concord_id"
    person_object_type: ObjectType = "contacts"
    person_id_property: str | None = None
    multi_status: bool = Field(
        default=True, description="send objectWriteTraceId so partial failures come back as 207"
    )
    property_group: str = Field(
        default="concord", description="the property group `concord crm setup` creates them in"
    )
    check_properties: bool = Field(
        default=True,
        description="before the first upsert of a run, refuse when a property is missing",
    )
    on_null: Literal["keep", "clear"] = Field(
        default="keep",
        description="keep: an empty value is not sent, so HubSpot keeps what it holds; "
        'clear: it is sent as "" and clears the property',
    )


class HubSpotTarget:
    """A ``Target`` writing to HubSpot's batch upsert and merge endpoints."""

    max_batch = 100
    default_batch = 100

    def __init__(self, name: str, settings: HubSpotSettings) -> None:
        self.name = name
        self.settings = settings
        self.client = CrmClient(name, settings.base_url, settings.auth, settings.http)
        self._checked: set[str] = set()
        self.limit = BatchLimit(self.max_batch)
        """Lowered for the rest of the run when HubSpot refuses a batch as too large."""
        self.unmatched_reads = 0
        """Upserts whose results named not every input, so their ids were read back."""

    @classmethod
    def validate(cls, config: TargetConfig) -> None:
        """Check the section's settings."""
        parse_settings(HubSpotSettings, config)

    @classmethod
    def from_config(cls, config: TargetConfig) -> HubSpotTarget:
        """Build from the config section; the token is resolved at the first call."""
        return cls(config.name, parse_settings(HubSpotSettings, config))

    @classmethod
    def merge_action(cls, config: TargetConfig) -> str:
        """HubSpot merges the absorbed record into the survivor."""
        return "merge"

    @classmethod
    def merge_calls(cls, config: TargetConfig, merges: int) -> int:
        """One merge call per absorbed record."""
        return merges

    @property
    def calls(self) -> int:
        """API calls made so far."""
        return self.client.calls

    def close(self) -> None:
        """Close the HTTP session."""
        self.client.close()

    def _object(self, kind: str) -> tuple[str, str]:
        s = self.settings
        if kind == "person":
            return s.person_object_type, s.person_id_property or s.id_property
        return s.object_type, s.id_property

    def push(self, records: Sequence[PushRecord]) -> list[PushOutcome]:
        """Batch-upsert companies and contacts; one outcome per record, in order."""
        by_kind: dict[str, list[PushRecord]] = {}
        for r in records:
            by_kind.setdefault(r.object_type, []).append(r)
        out: dict[str, PushOutcome] = {}
        for kind, group in by_kind.items():
            object_type, idp = self._object(kind)
            if self.settings.check_properties and object_type not in self._checked:
                self._require_properties(
                    object_type, {idp, *(k for r in group for k in r.properties)}
                )

            def send(
                batch: Sequence[PushRecord], o: str = object_type, p: str = idp
            ) -> list[PushOutcome]:
                return self._upsert(o, p, batch)

            for outcome in self.limit.send(group, send, _describe):
                out[outcome.key] = outcome
        return [
            out.get(r.key) or PushOutcome(r.key, ok=False, error="missing in HubSpot's response")
            for r in records
        ]

    def _upsert(
        self, object_type: str, idp: str, records: Sequence[PushRecord]
    ) -> list[PushOutcome]:
        inputs: list[dict[str, Any]] = []
        keep = self.settings.on_null == "keep"
        for r in records:
            properties = {
                k: v
                for k, v in r.properties.items()
                if not (keep and v in (None, "") and k not in r.clear)
            }
            item: dict[str, Any] = {
                "id": r.key,
                "idProperty": idp,
                "properties": {**properties, idp: r.key},
            }
            if self.settings.multi_status:
                item["objectWriteTraceId"] = r.key
            inputs.append(item)
        resp = self.client.request(
            "POST", f"/crm/v3/objects/{object_type}/batch/upsert", json={"inputs": inputs}
        )
        return self._outcomes(object_type, idp, records, resp.data)

    def _outcomes(
        self, object_type: str, idp: str, records: Sequence[PushRecord], data: Any
    ) -> list[PushOutcome]:
        """Outcomes of a 2xx upsert, matched to the inputs the way HubSpot's v3 spec allows.

        A 2xx means every input was written except those an error item names: a result names
        its input by the id property when HubSpot echoes it in ``properties``, else by its
        ``objectWriteTraceId``; an error item names its inputs in ``context``. The HubSpot ids
        of written inputs no result names are read back with ``batch/read`` by the id
        property; an input written but not found there is still accepted (without an id).
        """
        data = data if isinstance(data, dict) else {}
        sent = {r.key for r in records}
        by_key: dict[str, PushOutcome] = {}
        for err in data.get("errors") or []:
            if not isinstance(err, dict):
                continue
            context = err.get("context") or {}
            keys = [*(context.get("objectWriteTraceId") or []), *(context.get("ids") or [])]
            message = _message(err)
            for key in keys:
                if str(key) in sent:
                    by_key[str(key)] = PushOutcome(str(key), ok=False, error=message)
        for res in data.get("results") or []:
            if not isinstance(res, dict):
                continue
            props = res.get("properties") or {}
            key = props.get(idp) if isinstance(props, dict) else None
            if key is None or str(key) not in sent:
                key = res.get("objectWriteTraceId")
            if key is not None and str(key) in sent and str(key) not in by_key:
                remote = res.get("id")
                by_key[str(key)] = PushOutcome(
                    str(key), ok=True, remote_id=str(remote) if remote is not None else None
                )
        unnamed = [r.key for r in records if r.key not in by_key]
        if unnamed:
            self.unmatched_reads += 1
            found = self._remote_ids(object_type, idp, unnamed)
            for key in unnamed:
                by_key[key] = PushOutcome(key, ok=True, remote_id=found.get(key))
        return [by_key[r.key] for r in records]

    def _remote_ids(self, object_type: str, idp: str, keys: Sequence[str]) -> dict[str, str]:
        """HubSpot ids of ``keys`` (id property values), read with ``batch/read``."""
        return {
            rec.key: rec.remote_id
            for rec in self._batch_read(object_type, idp, keys, [idp])
            if rec.remote_id is not None
        }

    def read(
        self, object_type: ObjectKind, keys: Sequence[str], properties: Sequence[str]
    ) -> list[RemoteRecord]:
        """The records HubSpot holds for ``keys``, read by the id property in batches of 100."""
        hub_type, idp = self._object(object_type)
        return [
            RemoteRecord(r.key, object_type, r.remote_id, r.properties)
            for r in self._batch_read(hub_type, idp, keys, properties)
        ]

    def _batch_read(
        self, hub_type: str, idp: str, keys: Sequence[str], properties: Sequence[str]
    ) -> list[RemoteRecord]:
        found: list[RemoteRecord] = []
        for chunk in chunks(list(keys), self.max_batch):
            body = {
                "idProperty": idp,
                "inputs": [{"id": key} for key in chunk],
                "properties": sorted({*properties, idp}),
                "propertiesWithHistory": [],
            }
            try:
                resp = self.client.request(
                    "POST", f"/crm/v3/objects/{hub_type}/batch/read", json=body
                )
            except PushError as exc:
                if exc.status == 404:  # none of these ids exists in HubSpot
                    continue
                raise
            data = resp.data if isinstance(resp.data, dict) else {}
            for res in data.get("results") or []:
                props = res.get("properties") or {}
                if props.get(idp) is not None:
                    found.append(
                        RemoteRecord(str(props[idp]), "company", str(res.get("id")), dict(props))
                    )
        return found

    # -- properties ------------------------------------------------------------------------------

    def _held_properties(self, hub_type: str, names: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The definitions HubSpot holds for ``names`` (``properties/batch/read``).

        Not counted in ``calls`` (the plan's estimate): it is a check, not a write.
        """
        body = {"archived": False, "inputs": [{"name": n} for n in sorted(set(names))]}
        resp = self.client.http.request(
            "POST", f"/crm/v3/properties/{hub_type}/batch/read", json=body
        )
        data = resp.data if isinstance(resp.data, dict) else {}
        return {
            str(p["name"]): p
            for p in data.get("results") or []
            if isinstance(p, dict) and p.get("name") is not None
        }

    def _require_properties(self, hub_type: str, names: set[str]) -> None:
        held = self._held_properties(hub_type, sorted(names))
        missing = sorted(names - set(held))
        if missing:
            raise PushError(
                f"HubSpot has no {hub_type} propert{'y' if len(missing) == 1 else 'ies'} "
                f"{', '.join(missing)}; create them with `concord crm setup --target "
                f"{self.name}` (or in HubSpot's settings)",
                target=self.name,
                retriable=False,
            )
        self._checked.add(hub_type)

    def check_properties(
        self, specs: Sequence[PropertySpec], *, create: bool
    ) -> list[PropertyState]:
        """Which properties HubSpot holds as the mapping needs them; ``create`` the missing.

        Missing ones are created in ``property_group`` (created first when HubSpot lacks it)
        with ``properties/batch/create``; the id property with unique values. A HubSpot-defined
        property (name, domain, email, ...) is ``standard``; a custom one of another type
        ``differs``.
        """
        states: dict[int, PropertyState] = {}
        by_type: dict[str, list[int]] = {}
        for index, spec in enumerate(specs):
            by_type.setdefault(self._object(spec.object_type)[0], []).append(index)
        for hub_type, indexes in by_type.items():
            held = self._held_properties(hub_type, [specs[i].name for i in indexes])
            missing: list[int] = []
            for i in indexes:
                spec, found = specs[i], held.get(specs[i].name)
                if found is None:
                    missing.append(i)
                elif found.get("hubspotDefined"):
                    states[i] = PropertyState(spec, "standard")
                elif found.get("type") not in (None, HUBSPOT_TYPES[spec.type][0]):
                    states[i] = PropertyState(
                        spec,
                        "differs",
                        f"type {found.get('type')} in HubSpot, {HUBSPOT_TYPES[spec.type][0]} "
                        "needed",
                    )
                else:
                    states[i] = PropertyState(spec, "exists")
            if missing and create:
                self._ensure_group(hub_type)
                inputs = [self._definition(specs[i]) for i in missing]
                self.client.request(
                    "POST", f"/crm/v3/properties/{hub_type}/batch/create", json={"inputs": inputs}
                )
            for i in missing:
                states[i] = PropertyState(specs[i], "created" if create else "missing")
        return [states[i] for i in range(len(specs))]

    def _definition(self, spec: PropertySpec) -> dict[str, Any]:
        hub_type, field_type = HUBSPOT_TYPES[spec.type]
        body: dict[str, Any] = {
            "name": spec.name,
            "label": spec.label,
            "type": hub_type,
            "fieldType": field_type,
            "groupName": self.settings.property_group,
            "description": "Written by concord (customer 360)",
        }
        if spec.type == "bool":
            body["options"] = [
                {"label": "Yes", "value": "true", "displayOrder": 0, "hidden": False},
                {"label": "No", "value": "false", "displayOrder": 1, "hidden": False},
            ]
        if spec.unique:
            body["hasUniqueValue"] = True
        return body

    def _ensure_group(self, hub_type: str) -> None:
        group = self.settings.property_group
        try:
            self.client.request("GET", f"/crm/v3/properties/{hub_type}/groups/{group}")
        except PushError as exc:
            if exc.status != 404:
                raise
            self.client.request(
                "POST",
                f"/crm/v3/properties/{hub_type}/groups",
                json={"name": group, "label": "concord", "displayOrder": -1},
            )

    def supersede(self, items: Sequence[Supersession]) -> list[PushOutcome]:
        """Merge each absorbed record into its survivor; an already merged pair counts as done."""
        out: list[PushOutcome] = []
        for s in items:
            if s.survivor_remote_id is None or s.absorbed_remote_id is None:
                out.append(
                    PushOutcome(s.absorbed, ok=False, error="no HubSpot id to merge (not pushed)")
                )
                continue
            object_type, _ = self._object(s.object_type)
            if s.survivor_object_type and s.survivor_object_type != s.object_type:
                out.append(
                    PushOutcome(
                        s.absorbed,
                        ok=False,
                        error=f"cannot merge a {s.object_type} into a {s.survivor_object_type} "
                        "in HubSpot (different object types)",
                    )
                )
                continue
            body = {
                "primaryObjectId": s.survivor_remote_id,
                "objectIdToMerge": s.absorbed_remote_id,
            }
            try:
                self.client.request("POST", f"/crm/v3/objects/{object_type}/merge", json=body)
            except PushError as exc:
                if is_call_failure(exc):
                    raise
                if self._already_merged(object_type, s):
                    out.append(PushOutcome(s.absorbed, ok=True, remote_id=s.survivor_remote_id))
                else:
                    out.append(PushOutcome(s.absorbed, ok=False, error=_describe(exc)))
                continue
            out.append(PushOutcome(s.absorbed, ok=True, remote_id=s.survivor_remote_id))
        return out

    def archive(self, records: Sequence[PushRecord]) -> list[PushOutcome]:
        """Archive each record (``DELETE /crm/v3/objects/{type}/{id}``); gone already is done."""
        out: list[PushOutcome] = []
        for record in records:
            if record.remote_id is None:
                out.append(PushOutcome(record.key, ok=False, error="no HubSpot id to archive"))
                continue
            object_type, _ = self._object(record.object_type)
            try:
                self.client.request(
                    "DELETE",
                    f"/crm/v3/objects/{object_type}/{record.remote_id}",
                    parse_json=False,
                )
            except PushError as exc:
                if is_call_failure(exc):
                    raise
                if exc.status != 404:
                    out.append(PushOutcome(record.key, ok=False, error=_describe(exc)))
                    continue
            out.append(PushOutcome(record.key, ok=True, remote_id=record.remote_id))
        return out

    def _already_merged(self, object_type: str, s: Supersession) -> bool:
        """HubSpot resolves a merged-away id to the record it went into."""
        try:
            resp = self.client.request(
                "GET", f"/crm/v3/objects/{object_type}/{s.absorbed_remote_id}"
            )
        except PushError:
            return False
        data = resp.data if isinstance(resp.data, dict) else {}
        return str(data.get("id")) == str(s.survivor_remote_id)


HUBSPOT_TYPES: dict[str, tuple[str, str]] = {
    "string": ("string", "text"),
    "number": ("number", "number"),
    "date": ("date", "date"),
    "datetime": ("datetime", "date"),
    "bool": ("enumeration", "booleancheckbox"),
}
"""concord's property type -> HubSpot's (type, fieldType)."""


def _message(err: dict[str, Any]) -> str:
    """HubSpot's error message with the per-property details it gives."""
    parts = [str(err.get("message") or err.get("category") or "rejected")]
    for detail in err.get("errors") or []:
        if isinstance(detail, dict) and detail.get("message"):
            parts.append(str(detail["message"]))
    category = err.get("category")
    text = "; ".join(dict.fromkeys(parts))
    return f"{category}: {text}" if category else text


def _describe(exc: PushError) -> str:
    body = error_body(exc)
    if isinstance(body, dict):
        return f"HTTP {exc.status} {_message(body)}"
    return exc.message
