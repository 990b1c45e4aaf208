"""How a REST source asks for one incremental window, one small class per style.

The run gives a window (start inclusive, end exclusive, either may be open); the style turns it
into what the API understands, together with an order by cursor then id so pages stay stable:

- ``params``: start/end as query parameters (``updated_since=...``), optional order parameters;
- ``tryton_domain``: clauses on ``last_modified_at`` appended to the entity's static domain and
  sent as Tryton's base64 JSON ``d=``, with ``o=`` ordering by cursor then id;
- ``odata_filter``: ``$filter=lastModifiedDateTime ge ...`` (and ``lt`` the end) joined with
  the entity's static filter, plus ``$orderby`` (Business Central API v2.0 and other OData APIs).

The start is inclusive, so records at the previous watermark are pulled again: staging stores
them only when their content hash changed, which de-duplicates the overlap. A full refresh is
simply an open window.

Keyset (seek) paging: the ``tryton_domain`` style (and ``odata_filter`` with ``seek: true``)
can also say "strictly after (cursor, id)" (``after``). The source then asks every page as the
first page of the window plus that clause, so a record edited during the pull (it leaves the
window, whose end is fixed when the run starts) never shifts the records behind it: nothing falls
between two pages. Offset-style paging has no such guarantee (see docs/connectors-rest.md).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from concord.contracts import Window
from concord.utc import as_utc, parse_time
from connectors.erp import tryton

TimeFormat = Literal["iso", "iso_z", "epoch", "date"]


def format_time(value: datetime, fmt: TimeFormat) -> str:
    """A time in the format an API expects (ISO, ISO with Z, epoch seconds or date)."""
    value = as_utc(value)
    if fmt == "epoch":
        return str(int(value.timestamp()))
    if fmt == "date":
        return value.date().isoformat()
    if fmt == "iso_z":
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value.isoformat()


SeekKey = tuple[Any, Any]
"""Where a seek page starts: strictly after this (cursor value, id) of the last record seen."""


class _Style(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @property
    def seeks(self) -> bool:
        """Whether this style pages by keyset (each page after the last (cursor, id) seen)."""
        return False

    def seek_key(self, record: Any) -> SeekKey | None:
        """The (cursor, id) of a (decoded) record, or None when it lacks either."""
        cursor_field = getattr(self, "cursor_field", None)
        id_field = getattr(self, "id_field", "id")
        if not isinstance(record, dict) or cursor_field is None:
            return None
        cursor, rid = record.get(cursor_field), record.get(id_field)
        if cursor in (None, "") or rid in (None, ""):
            return None
        return cursor, rid


class ParamsWindow(_Style):
    """Window bounds as query parameters; ``order`` adds fixed parameters for the sort."""

    style: Literal["params"] = "params"
    start_param: str
    end_param: str | None = None
    format: TimeFormat = "iso_z"
    order: dict[str, str] = Field(default_factory=dict)

    def encode(self, value: datetime) -> str:
        """A window bound as the API's parameter value."""
        return format_time(value, self.format)

    def apply(
        self, params: dict[str, Any], window: Window, after: SeekKey | None = None
    ) -> dict[str, Any]:
        """Add the window's start and end (and the order) to the query parameters."""
        out = {**params, **self.order}
        if window.start is not None:
            out[self.start_param] = self.encode(window.start)
        if window.end is not None and self.end_param:
            out[self.end_param] = self.encode(window.end)
        return out


class TrytonDomainWindow(_Style):
    """Tryton REST: ``d=`` base64 JSON domain, ``o=`` base64 JSON order.

    A static domain may be given in the entity's params under ``param`` as a JSON list (it is
    encoded here); the window adds ``[cursor_field, ">=", start]`` and ``[cursor_field, "<",
    end]``.
    """

    style: Literal["tryton_domain"]
    cursor_field: str = "last_modified_at"
    id_field: str = "id"
    param: str = "d"
    order_param: str | None = "o"
    paging: Literal["seek", "offset"] = Field(
        default="seek",
        description="seek: every page after the last (cursor, id) seen; offset: the paginator's",
    )

    @property
    def seeks(self) -> bool:
        """Seek paging unless ``paging: offset``."""
        return self.paging == "seek"

    def apply(
        self, params: dict[str, Any], window: Window, after: SeekKey | None = None
    ) -> dict[str, Any]:
        """Append the window's ``last_modified_at`` clauses to the Tryton domain, ordered.

        With ``after`` the domain also asks for records strictly after that (cursor, id):
        ``["OR", [cursor, ">", c], [[cursor, "=", c], [id, ">", i]]]``.
        """
        out = dict(params)
        static = out.pop(self.param, None)
        if isinstance(static, str):  # already encoded by hand
            static = tryton.decode_param(static)
        domain: list[Any] = list(static or [])
        if window.start is not None:
            domain.append([self.cursor_field, ">=", tryton.encode_datetime(window.start)])
        if window.end is not None:
            domain.append([self.cursor_field, "<", tryton.encode_datetime(window.end)])
        if after is not None:
            cursor = tryton.encode_datetime(parse_time(str(after[0])))
            domain.append(
                [
                    "OR",
                    [self.cursor_field, ">", cursor],
                    [[self.cursor_field, "=", cursor], [self.id_field, ">", after[1]]],
                ]
            )
        if domain:
            out[self.param] = tryton.encode_param(domain)
        if self.order_param:
            out[self.order_param] = tryton.encode_param([[self.cursor_field, "ASC"], ["id", "ASC"]])
        return out


class ODataFilterWindow(_Style):
    """OData ``$filter`` on a DateTimeOffset field, joined with ``and`` to a static filter."""

    style: Literal["odata_filter"]
    cursor_field: str = "lastModifiedDateTime"
    param: str = "$filter"
    start_operator: Literal["ge", "gt"] = "ge"
    order_param: str | None = "$orderby"
    id_field: str = "id"
    seek: bool = Field(
        default=False,
        description="page by keyset: needs an API that filters and orders by the id (gt)",
    )
    id_literal: Literal["string", "number", "guid"] = "string"

    @property
    def seeks(self) -> bool:
        """Seek paging when ``seek: true``."""
        return self.seek

    def _id(self, value: Any) -> str:
        if self.id_literal == "string":
            return "'" + str(value).replace("'", "''") + "'"
        return str(value)

    def apply(
        self, params: dict[str, Any], window: Window, after: SeekKey | None = None
    ) -> dict[str, Any]:
        """Join the window's ``$filter`` clauses with the entity's own, ordered.

        With ``after``: ``(cursor gt c or (cursor eq c and id gt i))``.
        """
        out = dict(params)
        clauses = [f"({out[self.param]})"] if out.get(self.param) else []
        if window.start is not None:
            start = as_utc(window.start).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            clauses.append(f"{self.cursor_field} {self.start_operator} {start}")
        if window.end is not None:
            end = as_utc(window.end).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            clauses.append(f"{self.cursor_field} lt {end}")
        if after is not None:
            at = as_utc(parse_time(str(after[0]))).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            clauses.append(
                f"({self.cursor_field} gt {at} or ({self.cursor_field} eq {at} and "
                f"{self.id_field} gt {self._id(after[1])}))"
            )
        if clauses:
            out[self.param] = " and ".join(clauses)
        if self.order_param:
            out[self.order_param] = f"{self.cursor_field} asc,{self.id_field} asc"
        return out


def _style_of(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("style", "params"))
    return str(getattr(value, "style", "params"))


IncrementalConfig = Annotated[
    Annotated[ParamsWindow, Tag("params")]
    | Annotated[TrytonDomainWindow, Tag("tryton_domain")]
    | Annotated[ODataFilterWindow, Tag("odata_filter")],
    Discriminator(_style_of),
]
