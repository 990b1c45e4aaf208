"""A loopback server speaking Tryton 8.2's REST dialect over an in-memory table, for fast tests.

`GET /<db>/rest/model/<model>` with the base64 JSON domain `d=` (clauses `[field, op, value]`
with `=`, `!=`, `<`, `<=`, `>`, `>=`, `in`, `not in` on fields or dotted paths; `"OR"`/`"AND"`
lists; nested domains are AND), the order `o=`, and `Range: records=<start>-<end>` (end
exclusive) answered with `Content-Range: records a-b/<total>` or 416 past the last record, as
trytond's `protocols/rest.py` does. Datetimes and Decimals travel tagged (`{"__class__":
"datetime", ...}`). `X-Tryton-Context` (base64 JSON) with `active_test: false` includes inactive
records (`active` false), which are left out otherwise. `GET .../<model>/<id>` reads one record.

What makes it useful for loss tests: `after_page` is called after each list answer is built and
before it is sent, so a test can edit, create, archive or delete records between two pages;
`edit` gives a record a fresh `last_modified_at` from a clock that never goes backwards (real
time, so a run whose window ends when it started sees the edit in the next window); and
`shuffle_keys` sends every record with its keys in a new order, as a restarted Tryton may;
`hidden` ids are listed (`f=id`) but never paged, an ERP whose paging loses records.
"""

from __future__ import annotations

import base64
import random
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson

from sandbox.server import ApiError, LoopbackServer, Request, Response

Record = dict[str, Any]
DEFAULT_KEY = "tryton-key"
PageHook = Callable[["TrytonRestServer", str, Request], None]
"""Called as ``hook(server, model, request)`` after a list page is built, before it is sent."""


def _tag(value: Any) -> Any:
    if isinstance(value, datetime):
        v = value.astimezone(UTC)
        return {
            "__class__": "datetime",
            "year": v.year,
            "month": v.month,
            "day": v.day,
            "hour": v.hour,
            "minute": v.minute,
            "second": v.second,
            "microsecond": v.microsecond,
        }
    if isinstance(value, Decimal):
        return {"__class__": "Decimal", "decimal": str(value)}
    return value


def _untag(value: Any) -> Any:
    if isinstance(value, dict) and value.get("__class__") == "datetime":
        return datetime(
            value["year"],
            value["month"],
            value["day"],
            value.get("hour", 0),
            value.get("minute", 0),
            value.get("second", 0),
            value.get("microsecond", 0),
            tzinfo=UTC,
        )
    if isinstance(value, dict) and value.get("__class__") == "Decimal":
        return Decimal(value["decimal"])
    if isinstance(value, list):
        return [_untag(v) for v in value]
    return value


def _decode(text: str) -> Any:
    return orjson.loads(base64.urlsafe_b64decode(text.encode() + b"=" * (-len(text) % 4)))


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: bool(a == b),
    "!=": lambda a, b: bool(a != b),
    "<": lambda a, b: a is not None and bool(a < b),
    "<=": lambda a, b: a is not None and bool(a <= b),
    ">": lambda a, b: a is not None and bool(a > b),
    ">=": lambda a, b: a is not None and bool(a >= b),
    "in": lambda a, b: a in b,
    "not in": lambda a, b: a not in b,
}


def _get(record: Record, path: str) -> Any:
    value: Any = record
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def matches(record: Record, domain: Any) -> bool:
    """Whether ``record`` satisfies a Tryton domain (the subset described in the module)."""
    if not isinstance(domain, list) or not domain:
        return True
    if isinstance(domain[0], str) and domain[0] not in ("OR", "AND"):
        field, op, value = domain[0], domain[1], _untag(domain[2])
        if op not in _OPS:
            raise ApiError(400, f"operator {op!r} not supported")
        return _OPS[op](_get(record, field), value)
    if domain[0] == "OR":
        return any(matches(record, d) for d in domain[1:])
    parts = domain[1:] if domain[0] == "AND" else domain
    return all(matches(record, d) for d in parts)


class TrytonRestServer(LoopbackServer):
    """Tryton's REST list/read endpoints over ``models`` (model name -> records by id)."""

    def __init__(self, database: str = "db", token: str | None = DEFAULT_KEY) -> None:
        self.database = database
        self.models: dict[str, dict[int, Record]] = {}
        self.after_page: PageHook | None = None
        self.shuffle_keys = False
        self.hidden: set[int] = set()  # ids left out of every page but id listings (f=id)
        self.pages_served = 0
        self._rng = random.Random(1)
        self._clock = datetime.now(UTC)
        self._data_lock = threading.RLock()
        super().__init__(token=token)

    @property
    def base_url(self) -> str:
        """The source's ``base_url``: server URL plus database name."""
        return f"{self.url}/{self.database}"

    # -- data -------------------------------------------------------------------------------

    def tick(self) -> datetime:
        """A ``last_modified_at`` later than every one handed out and not before real time."""
        with self._data_lock:
            self._clock = max(self._clock + timedelta(microseconds=1), datetime.now(UTC))
            return self._clock

    def add(self, model: str, record: Record, *, at: datetime | None = None) -> Record:
        """Add a record (``id`` required); ``last_modified_at`` from ``at`` or the clock."""
        with self._data_lock:
            new = {"active": True, **record, "last_modified_at": at or self.tick()}
            self.models.setdefault(model, {})[int(new["id"])] = new
            return new

    def edit(self, model: str, rid: int, **changes: Any) -> Record:
        """Change a record as a Tryton user would: fresh ``last_modified_at``."""
        with self._data_lock:
            old = self.models[model][rid]
            new = {**old, **changes, "last_modified_at": self.tick()}
            self.models[model][rid] = new
            return new

    def set_quietly(self, model: str, rid: int, **changes: Any) -> Record:
        """Change a record without touching ``last_modified_at`` (a derived value)."""
        with self._data_lock:
            new = {**self.models[model][rid], **changes}
            self.models[model][rid] = new
            return new

    def delete(self, model: str, rid: int) -> None:
        """Delete a record."""
        with self._data_lock:
            del self.models[model][rid]

    def records(self, model: str, *, active_only: bool = False) -> list[Record]:
        """A snapshot of the model's records by id."""
        with self._data_lock:
            rows = sorted(self.models.get(model, {}).values(), key=lambda r: r["id"])
        return [r for r in rows if r.get("active", True) or not active_only]

    # -- HTTP -------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        prefix = f"/{self.database}/rest/model/"
        if not request.path.startswith(prefix) or request.method != "GET":
            raise ApiError(404, "not found")
        parts = request.path[len(prefix) :].strip("/").split("/")
        model = parts[0]
        if model not in self.models:
            raise ApiError(404, f"unknown model {model!r}")
        if len(parts) == 2:
            with self._data_lock:
                record = self.models[model].get(int(parts[1]))
            if record is None:
                raise ApiError(404, "not found")
            return Response(200, self._out(record))
        return self._search(model, request)

    def _search(self, model: str, request: Request) -> Response:
        domain = _decode(request.query["d"]) if "d" in request.query else []
        order = _decode(request.query["o"]) if "o" in request.query else [["id", "ASC"]]
        context = {}
        if "x-tryton-context" in request.headers:
            context = _decode(request.headers["x-tryton-context"])
        listing = request.query.get("f") == "id"
        with self._data_lock:
            rows = [
                r
                for r in self.models[model].values()
                if (r.get("active", True) or context.get("active_test") is False)
                and matches(r, domain)
                and (listing or r["id"] not in self.hidden)
            ]
        for field, direction in reversed(order):

            def key(record: Record, name: str = field) -> tuple[int, Any]:
                return (0, 0) if record.get(name) is None else (1, record[name])

            rows.sort(key=key, reverse=direction.upper() == "DESC")
        offset, limit = 0, len(rows)
        ranged = "range" in request.headers
        if ranged:
            start, end = request.headers["range"].split("=", 1)[1].split("-", 1)
            offset, limit = int(start), int(end) - int(start)
        page = rows[offset : offset + limit]
        if ranged and not page and offset:
            return Response(416, {"error": "range not satisfiable"})
        self.pages_served += 1
        body = [self._out(r) for r in page]
        if self.after_page is not None:
            self.after_page(self, model, request)
        headers = {"Content-Range": f"records {offset}-{offset + len(page)}/{len(rows)}"}
        return Response(200, body, headers)

    def _out(self, record: Record) -> Record:
        items = list(record.items())
        if self.shuffle_keys:
            self._rng.shuffle(items)
        return {k: _tag(v) for k, v in items}
