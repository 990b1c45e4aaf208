"""A loopback REST ERP over an `ErpStorage`: `GET /api/v1/{entity}` pages records ordered by
(updated_at, id) with an inclusive `updated_since`, an exclusive `updated_before`, `limit` (default
100, at most 1000) and an opaque keyset `cursor` (URL-safe base64 of the last returned updated_at
and id, so pages stay correct while records change) and answers {"data": [...], "next_cursor": str |
null}; `GET /api/v1/{entity}/_count` with the same `updated_since` and `updated_before` answers
{"count": N}, how many records that window holds; `GET /api/v1/{entity}/{id}` returns one
record. Bad dates, cursors or limits give 400, an unknown entity or id 404, a missing bearer token
401, all as JSON {"error": "..."}."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime

import orjson

from sandbox.erp_data import ENTITIES, ErpStorage, parse_iso
from sandbox.server import ApiError, LoopbackServer, Request, Response

DEFAULT_TOKEN = "sandbox-erp-token"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
PREFIX = "/api/v1/"


def encode_cursor(updated_at: str, record_id: str) -> str:
    """Opaque cursor for the position just after (updated_at, id)."""
    return base64.urlsafe_b64encode(orjson.dumps([updated_at, record_id])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    """Inverse of `encode_cursor`; raises `ApiError(400)` for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = orjson.loads(raw)
        if (
            isinstance(value, list)
            and len(value) == 2
            and isinstance(value[0], str)
            and isinstance(value[1], str)
        ):
            parse_iso(value[0])
            return value[0], value[1]
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        pass
    raise ApiError(400, "invalid cursor")


def _date_param(request: Request, name: str) -> datetime | None:
    text = request.query.get(name)
    if text is None or text == "":
        return None
    try:
        return parse_iso(text)
    except ValueError:
        raise ApiError(400, f"invalid {name}: expected an ISO-8601 date-time") from None


def _limit_param(request: Request) -> int:
    text = request.query.get("limit")
    if text is None or text == "":
        return DEFAULT_LIMIT
    try:
        limit = int(text)
    except ValueError:
        raise ApiError(400, "invalid limit: expected an integer") from None
    if limit < 1 or limit > MAX_LIMIT:
        raise ApiError(400, f"invalid limit: must be between 1 and {MAX_LIMIT}")
    return limit


class RestErpServer(LoopbackServer):
    """The REST ERP sandbox serving `dataset` (any `ErpStorage`) on a loopback port."""

    def __init__(
        self,
        dataset: ErpStorage,
        token: str | None = DEFAULT_TOKEN,
        port: int = 0,
        host: str = "127.0.0.1",
    ) -> None:
        self.dataset = dataset
        super().__init__(token=token, port=port, host=host)

    def handle(self, request: Request) -> Response:
        if not request.path.startswith(PREFIX):
            raise ApiError(404, "not found")
        parts = request.path[len(PREFIX) :].strip("/").split("/")
        entity = parts[0]
        if entity not in ENTITIES or not self.dataset.has_entity(entity) or len(parts) > 2:
            raise ApiError(404, f"unknown entity {entity!r}")
        if request.method != "GET":
            raise ApiError(405, "method not allowed")
        if parts[1:] == ["_count"]:
            return self._count(entity, request)
        if len(parts) == 2:
            record = self.dataset.get(entity, parts[1])
            if record is None:
                raise ApiError(404, f"{entity}/{parts[1]} not found")
            return Response(200, record)
        return self._list(entity, request)

    def _list(self, entity: str, request: Request) -> Response:
        since = _date_param(request, "updated_since")
        before = _date_param(request, "updated_before")
        limit = _limit_param(request)
        cursor = request.query.get("cursor") or None
        after = decode_cursor(cursor) if cursor is not None else None
        rows = self.dataset.page(entity, since, before, after, limit)
        next_cursor = None
        if len(rows) == limit:
            last = rows[-1]
            next_cursor = encode_cursor(last["updated_at"], last["id"])
        return Response(200, {"data": rows, "next_cursor": next_cursor})

    def _count(self, entity: str, request: Request) -> Response:
        since = _date_param(request, "updated_since")
        before = _date_param(request, "updated_before")
        total, after = 0, None
        while True:
            rows = self.dataset.page(entity, since, before, after, MAX_LIMIT)
            total += len(rows)
            if len(rows) < MAX_LIMIT:
                return Response(200, {"count": total})
            after = (rows[-1]["updated_at"], rows[-1]["id"])
