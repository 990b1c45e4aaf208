"""A loopback CRM imitating HubSpot CRM v3 for companies and contacts: `POST
/crm/v3/objects/{type}/batch/upsert` upserts by the idProperty value (at most 100 inputs, every
property value a string, idProperty required; violations give 400 VALIDATION_ERROR and change
nothing). Record-level problems (a property the portal does not have, an invalid contact e-mail, or
a rule a test adds to `validators`) refuse the whole batch with 400, unless every input carries an
`objectWriteTraceId`: then the valid inputs are written and the answer is 207 Multi-Status with one
error per bad input (`context.objectWriteTraceId`). `GET /crm/v3/objects/{type}` lists objects with
`limit`/`after` paging, `GET /crm/v3/objects/{type}/{id}` reads one (by internal id, or by
idProperty value with `?idProperty=`), `POST /crm/v3/objects/{type}/batch/read` reads up to 100
by `idProperty` (200, or 207 with one OBJECT_NOT_FOUND error item listing the ids it does not hold,
or 404 when it holds none of them), `DELETE /crm/v3/objects/{type}/{id}` archives one (204), and
`POST /crm/v3/objects/{type}/merge` merges two objects (the merged one disappears and later upserts
of its idProperty value land on the primary). The properties API (`POST
/crm/v3/properties/{type}/batch/read` and `batch/create`, `GET|POST .../groups`) knows HubSpot's own
properties and those created; with `known_properties` unset the portal holds every property.
`upsert_answer` chooses how upsert results name their inputs (echo, trace, bare). State is kept
in memory (`objects`, `batches`,
`merged`) for tests to inspect, and, given a `state_file`, loaded from and saved to that JSON file
after every change (so the demo's CRM is the same CRM from one run to the next); errors use
HubSpot's JSON shape."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson

from sandbox.server import ApiError, LoopbackServer, Request, Response

DEFAULT_TOKEN = "sandbox-crm-token"
OBJECT_TYPES: tuple[str, ...] = ("companies", "contacts")
MAX_BATCH = 100
PREFIX = "/crm/v3/objects/"
PROPERTIES = "/crm/v3/properties/"
STANDARD_PROPERTIES: dict[str, dict[str, str]] = {
    "companies": {
        "name": "string",
        "domain": "string",
        "phone": "string",
        "country": "string",
        "city": "string",
        "website": "string",
        "hs_object_id": "number",
    },
    "contacts": {
        "firstname": "string",
        "lastname": "string",
        "email": "string",
        "phone": "string",
        "country": "string",
        "company": "string",
        "hs_object_id": "number",
    },
}
"""A few of HubSpot's own properties (``hubspotDefined``), which no portal needs to create."""

_CATEGORIES = {
    400: "VALIDATION_ERROR",
    401: "INVALID_AUTHENTICATION",
    404: "OBJECT_NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "VALIDATION_ERROR",
    429: "RATE_LIMITS",
}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _validation(message: str, **extra: Any) -> ApiError:
    return ApiError(400, message, category="VALIDATION_ERROR", **extra)


UpsertAnswer = Literal["echo", "trace", "bare"]
"""How batch/upsert results name their inputs, each a way HubSpot's v3 spec allows: ``echo``
returns every property (the id property included), ``trace`` only HubSpot's default properties
and the input's ``objectWriteTraceId``, ``bare`` only the default properties, in another order."""
DEFAULT_PROPERTIES = ("hs_object_id", "createdate", "hs_lastmodifieddate")


def _defaults_only(stored: dict[str, Any]) -> dict[str, str]:
    return {
        "hs_object_id": stored["id"],
        "createdate": stored["createdAt"],
        "hs_lastmodifieddate": stored["updatedAt"],
    }


Validator = Callable[[str, dict[str, Any]], str | None]
"""(object type, input properties) -> an error message for that input, or None when valid."""


class CrmServer(LoopbackServer):
    """HubSpot-like CRM sandbox. `objects[type][id_value]` holds {"id", "properties", "createdAt",
    "updatedAt"}; `batches` every accepted upsert body; `merged` merged internal id -> primary."""

    def __init__(
        self,
        token: str | None = DEFAULT_TOKEN,
        port: int = 0,
        host: str = "127.0.0.1",
        state_file: Path | None = None,
    ) -> None:
        self.objects: dict[str, dict[str, dict[str, Any]]] = {t: {} for t in OBJECT_TYPES}
        self.batches: list[dict[str, Any]] = []
        self.merged: dict[str, str] = {}
        self.validators: list[Validator] = []
        self.known_properties: dict[str, set[str]] | None = None
        self.upsert_answer: UpsertAnswer = "echo"
        self.max_batch = MAX_BATCH  # a test may lower it (a portal with a smaller limit)
        self.property_defs: dict[str, dict[str, dict[str, Any]]] = {t: {} for t in OBJECT_TYPES}
        self.property_groups: dict[str, set[str]] = {
            t: {"companyinformation", "contactinformation"} for t in OBJECT_TYPES
        }
        self._aliases: dict[str, dict[str, str]] = {t: {} for t in OBJECT_TYPES}
        self.state_file = state_file
        first_id = self._load() if state_file is not None else 1001
        self._ids = itertools.count(first_id)
        self._state = threading.Lock()
        super().__init__(token=token, port=port, host=host)

    # -- state file ----------------------------------------------------------------------------

    def _load(self) -> int:
        """Objects, aliases and merges from the state file; returns the next free internal id."""
        assert self.state_file is not None
        if not self.state_file.is_file():
            return 1001
        data = orjson.loads(self.state_file.read_bytes())
        for object_type in OBJECT_TYPES:
            self.objects[object_type] = data.get("objects", {}).get(object_type, {})
            self._aliases[object_type] = data.get("aliases", {}).get(object_type, {})
        self.merged = data.get("merged", {})
        return int(data.get("next_id", 1001))

    def _save(self) -> None:
        """Write the state file (call holding the state lock)."""
        if self.state_file is None:
            return
        ids = [int(o["id"]) for objs in self.objects.values() for o in objs.values()]
        body = {
            "objects": self.objects,
            "aliases": self._aliases,
            "merged": self.merged,
            "next_id": max([1000, *ids, *map(int, self.merged)]) + 1,
        }
        partial = self.state_file.with_suffix(".tmp")
        partial.write_bytes(orjson.dumps(body))
        partial.replace(self.state_file)

    def error_response(self, error: ApiError) -> Response:
        extra = dict(error.extra)
        category = extra.pop("category", _CATEGORIES.get(error.status, "ERROR"))
        body: dict[str, Any] = {"status": "error", "message": error.message, "category": category}
        body.update(extra)
        return Response(error.status, body)

    def unauthorized(self) -> ApiError:
        return ApiError(
            401, "Authentication credentials not found.", category="INVALID_AUTHENTICATION"
        )

    # -- routing -------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        if request.path.startswith(PROPERTIES):
            return self._properties(request)
        if not request.path.startswith(PREFIX):
            raise ApiError(404, "not found")
        parts = request.path[len(PREFIX) :].strip("/").split("/")
        object_type = parts[0]
        if object_type not in OBJECT_TYPES:
            raise ApiError(404, f"unknown object type {object_type!r}")
        route = (request.method, tuple(parts[1:]))
        if route == ("POST", ("batch", "upsert")):
            return self._upsert(object_type, request.json())
        if route == ("POST", ("merge",)):
            return self._merge(object_type, request.json())
        if route == ("POST", ("batch", "read")):
            return self._batch_read(object_type, request.json())
        if request.method == "DELETE" and len(parts) == 2:
            return self._archive(object_type, parts[1])
        if route == ("GET", ()):
            return self._list(object_type, request)
        if request.method == "GET" and len(parts) == 2:
            return self._read(object_type, parts[1], request.query.get("idProperty"))
        raise ApiError(404, f"no route for {request.method} {request.path}")

    # -- properties ----------------------------------------------------------------------------

    def _property(self, object_type: str, name: str) -> dict[str, Any] | None:
        """The definition of one property, or None when the portal lacks it.

        With ``known_properties`` unset the portal holds every property a test writes (of no
        stated type unless created with one).
        """
        created = self.property_defs[object_type].get(name)
        if created is not None:
            return created
        standard = STANDARD_PROPERTIES.get(object_type, {}).get(name)
        if standard is not None:
            return {
                "name": name,
                "label": name,
                "type": standard,
                "hubspotDefined": True,
                "groupName": "companyinformation",
            }
        known = (self.known_properties or {}).get(object_type)
        if self.known_properties is not None and (known is None or name not in known):
            return None
        return {"name": name, "label": name, "groupName": "companyinformation"}

    def _properties(self, request: Request) -> Response:
        parts = request.path[len(PROPERTIES) :].strip("/").split("/")
        object_type, route = parts[0], (request.method, tuple(parts[1:]))
        if object_type not in OBJECT_TYPES:
            raise ApiError(404, f"unknown object type {object_type!r}")
        body = request.json() if request.method == "POST" else None
        if route == ("POST", ("batch", "read")):
            if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
                raise _validation("expected inputs: [{name}]")
            with self._state:
                found = [self._property(object_type, str(i.get("name"))) for i in body["inputs"]]
            return Response(200, {"status": "COMPLETE", "results": [p for p in found if p]})
        if route == ("POST", ("batch", "create")):
            if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
                raise _validation("expected inputs: [{name, label, type, fieldType, groupName}]")
            with self._state:
                for item in body["inputs"]:
                    missing = [
                        k
                        for k in ("name", "label", "type", "fieldType", "groupName")
                        if not item.get(k)
                    ]
                    if missing:
                        raise _validation(f"property {item.get('name')!r} lacks {missing}")
                    if item["groupName"] not in self.property_groups[object_type]:
                        raise _validation(f"property group {item['groupName']!r} does not exist")
                    self.property_defs[object_type][item["name"]] = dict(item)
                    if self.known_properties is not None:
                        self.known_properties.setdefault(object_type, set()).add(item["name"])
            return Response(201, {"status": "COMPLETE", "results": body["inputs"]})
        if route[0] == "GET" and len(route[1]) == 2 and route[1][0] == "groups":
            if route[1][1] not in self.property_groups[object_type]:
                raise ApiError(404, f"group {route[1][1]} not found", category="OBJECT_NOT_FOUND")
            return Response(200, {"name": route[1][1], "label": route[1][1]})
        if route == ("POST", ("groups",)):
            if not isinstance(body, dict) or not body.get("name"):
                raise _validation("a group needs a name")
            self.property_groups[object_type].add(str(body["name"]))
            return Response(201, {"name": body["name"], "label": body.get("label", "")})
        raise ApiError(404, f"no route for {request.method} {request.path}")

    # -- operations ----------------------------------------------------------------------------

    def _record_errors(self, object_type: str, inputs: list[dict[str, Any]]) -> dict[int, str]:
        """Input index -> why HubSpot would refuse that input (unknown property, bad value)."""
        found: dict[int, str] = {}
        known = (self.known_properties or {}).get(object_type)
        for index, item in enumerate(inputs):
            props: dict[str, Any] = item["properties"]
            problems = []
            if known is not None:
                standard = STANDARD_PROPERTIES.get(object_type, {})
                problems += [
                    f'Property "{name}" does not exist'
                    for name in props
                    if name not in known and name not in standard
                ]
            email = props.get("email")
            if object_type == "contacts" and email and "@" not in email:
                problems.append(f"Email address {email} is invalid")
            for validator in self.validators:
                message = validator(object_type, props)
                if message:
                    problems.append(message)
            if problems:
                found[index] = "; ".join(problems)
        return found

    def _upsert(self, object_type: str, body: Any) -> Response:
        started = _now()
        inputs = self._validate_upsert(body)
        bad = self._record_errors(object_type, inputs)
        traced = all(isinstance(i.get("objectWriteTraceId"), str) for i in inputs)
        if bad and not traced:
            index, message = min(bad.items())
            raise _validation(
                f"Property values were not valid: inputs[{index}]: {message}",
                errors=[
                    {
                        "message": m,
                        "code": "INVALID_PROPERTY_VALUE",
                        "context": {"input": [str(i)]},
                    }
                    for i, m in sorted(bad.items())
                ],
            )
        results = []
        errors = [
            {
                "status": "error",
                "category": "VALIDATION_ERROR",
                "message": "Property values were not valid",
                "context": {"objectWriteTraceId": [inputs[i]["objectWriteTraceId"]]},
                "errors": [{"message": m, "code": "INVALID_PROPERTY_VALUE"}],
            }
            for i, m in sorted(bad.items())
        ]
        with self._state:
            store = self.objects[object_type]
            aliases = self._aliases[object_type]
            for index, item in enumerate(inputs):
                if index in bad:
                    continue
                id_property, id_value = item["idProperty"], item["id"]
                id_value = aliases.get(id_value, id_value)
                now = _now()
                existing = store.get(id_value)
                if existing is None:
                    existing = {
                        "id": str(next(self._ids)),
                        "properties": {id_property: id_value},
                        "createdAt": now,
                        "updatedAt": now,
                    }
                    store[id_value] = existing
                    new = True
                else:
                    new = False
                existing["properties"].update(item["properties"])
                for name in [n for n, v in item["properties"].items() if v == ""]:
                    del existing["properties"][name]  # HubSpot: an empty string clears it
                existing["properties"].setdefault(id_property, id_value)
                existing["updatedAt"] = now
                result = {**self._public(existing), "new": new}
                if self.upsert_answer != "echo":
                    result["properties"] = _defaults_only(existing)
                if "objectWriteTraceId" in item and self.upsert_answer != "bare":
                    result["objectWriteTraceId"] = item["objectWriteTraceId"]
                results.append(result)
            self.batches.append(body)
            self._save()
        if self.upsert_answer == "bare":
            results.reverse()  # the spec promises no order
        answer: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": started,
            "completedAt": _now(),
        }
        if errors:
            answer["numErrors"] = len(errors)
            answer["errors"] = errors
            return Response(207, answer)
        return Response(200, answer)

    def _validate_upsert(self, body: Any) -> list[dict[str, Any]]:
        if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
            raise _validation("Invalid input JSON: expected an object with an 'inputs' array")
        inputs: list[Any] = body["inputs"]
        if len(inputs) > self.max_batch:
            raise _validation(
                f"Batch size {len(inputs)} exceeds the limit of {self.max_batch} inputs",
                context={"limit": [str(self.max_batch)]},
            )
        seen: set[str] = set()
        for index, item in enumerate(inputs):
            where = f"inputs[{index}]"
            if not isinstance(item, dict):
                raise _validation(f"{where}: expected an object")
            id_property = item.get("idProperty")
            if not isinstance(id_property, str) or not id_property:
                raise _validation(f"{where}: idProperty is required")
            id_value = item.get("id")
            if not isinstance(id_value, str) or not id_value:
                raise _validation(f"{where}: id must be a non-empty string")
            if id_value in seen:
                raise _validation(f"{where}: duplicate id {id_value!r} in batch input")
            seen.add(id_value)
            properties = item.get("properties")
            if not isinstance(properties, dict):
                raise _validation(f"{where}: properties must be an object")
            for name, value in properties.items():
                if not isinstance(value, str):
                    raise _validation(
                        f"Property values were not valid: {where}.properties.{name} must be a "
                        f"string, got {type(value).__name__}",
                        errors=[
                            {
                                "message": f"{name} must be a string",
                                "code": "INVALID_PROPERTY_VALUE",
                                "context": {"input": [str(index)], "propertyName": [name]},
                            }
                        ],
                    )
        return inputs

    def _list(self, object_type: str, request: Request) -> Response:
        try:
            limit = int(request.query.get("limit") or 10)
            after = int(request.query.get("after") or 0)
        except ValueError:
            raise _validation("limit and after must be integers") from None
        if not 1 <= limit <= 100:
            raise _validation("limit must be between 1 and 100")
        with self._state:
            ordered = sorted(self.objects[object_type].values(), key=lambda o: int(o["id"]))
            remaining = [o for o in ordered if int(o["id"]) > after]
            page = [self._public(o) for o in remaining[:limit]]
        body: dict[str, Any] = {"results": page}
        if len(remaining) > limit:
            body["paging"] = {"next": {"after": page[-1]["id"]}}
        return Response(200, body)

    def _read(self, object_type: str, key: str, id_property: str | None) -> Response:
        with self._state:
            found = self._find(object_type, key, id_property)
            if found is None:
                raise ApiError(404, f"Object {key} not found", category="OBJECT_NOT_FOUND")
            return Response(200, self._public(found))

    def _merge(self, object_type: str, body: Any) -> Response:
        if not isinstance(body, dict):
            raise _validation("expected primaryObjectId and objectIdToMerge")
        primary_id, merged_id = body.get("primaryObjectId"), body.get("objectIdToMerge")
        if not isinstance(primary_id, str) or not isinstance(merged_id, str):
            raise _validation("primaryObjectId and objectIdToMerge must be strings")
        if primary_id == merged_id:
            raise _validation("cannot merge an object with itself")
        with self._state:
            store = self.objects[object_type]
            primary = self._find(object_type, primary_id, None)
            merged = self._find(object_type, merged_id, None)
            if primary is None or merged is None:
                missing = primary_id if primary is None else merged_id
                raise ApiError(404, f"Object {missing} not found", category="OBJECT_NOT_FOUND")
            if primary is merged:
                raise _validation(f"Object {merged_id} was already merged into {primary_id}")
            primary_key = next(k for k, o in store.items() if o is primary)
            merged_key = next(k for k, o in store.items() if o is merged)
            for name, value in merged["properties"].items():
                if not primary["properties"].get(name):
                    primary["properties"][name] = value
            primary["updatedAt"] = _now()
            del store[merged_key]
            aliases = self._aliases[object_type]
            aliases[merged_key] = primary_key
            for alias, target in list(aliases.items()):
                if target == merged_key:
                    aliases[alias] = primary_key
            self.merged[merged["id"]] = primary["id"]
            self._save()
            return Response(200, self._public(primary))

    def _batch_read(self, object_type: str, body: Any) -> Response:
        if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
            raise _validation("Invalid input JSON: expected an object with an 'inputs' array")
        inputs: list[Any] = body["inputs"]
        if len(inputs) > MAX_BATCH:
            raise _validation(f"Batch size {len(inputs)} exceeds the limit of {MAX_BATCH} inputs")
        for name in ("properties", "propertiesWithHistory"):
            if not isinstance(body.get(name), list):
                raise _validation(f"{name} is required (a list)")
        id_property = body.get("idProperty")
        wanted = [str(i.get("id")) for i in inputs if isinstance(i, dict)]
        started = _now()
        with self._state:
            found = [(key, self._find(object_type, key, id_property)) for key in wanted]
        results, missing = [], []
        for key, obj in found:
            if obj is None:
                missing.append(key)
                continue
            public = self._public(obj)
            public["properties"] = {
                k: v for k, v in public["properties"].items() if k in body["properties"]
            }
            results.append(public)
        if not results and missing:
            raise ApiError(404, "Could not get any objects", category="OBJECT_NOT_FOUND")
        answer: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": started,
            "completedAt": _now(),
        }
        if not missing:
            return Response(200, answer)
        answer["numErrors"] = 1
        answer["errors"] = [
            {
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "message": f"Could not get some {object_type.upper()} objects, they may be "
                "deleted or not exist. Check that ids are valid.",
                "context": {"ids": missing},
            }
        ]
        return Response(207, answer)

    def _archive(self, object_type: str, object_id: str) -> Response:
        with self._state:
            store = self.objects[object_type]
            key = next((k for k, o in store.items() if o["id"] == object_id), None)
            if key is not None:
                del store[key]
                self._save()
        return Response(204)

    def delete_object(self, object_type: str, id_value: str) -> None:
        """Delete an object by its idProperty value, as someone would in HubSpot's UI."""
        with self._state:
            del self.objects[object_type][id_value]
            self._save()

    def _find(self, object_type: str, key: str, id_property: str | None) -> dict[str, Any] | None:
        store = self.objects[object_type]
        if id_property:
            found = store.get(self._aliases[object_type].get(key, key))
            if found is not None and found["properties"].get(id_property) is not None:
                return found
            return None
        key = self.merged.get(key, key)
        return next((o for o in store.values() if o["id"] == key), None)

    @staticmethod
    def _public(stored: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": stored["id"],
            "properties": dict(stored["properties"]),
            "createdAt": stored["createdAt"],
            "updatedAt": stored["updatedAt"],
            "archived": False,
        }
