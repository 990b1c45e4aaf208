"""Paginators for REST sources: given the last request and response, the next request or None.

They are stateless; the source keeps the loop guard. A checkpoint holds only where the next page
starts (``position``: an offset, a page number, a cursor, a next link, a range start), never the
request's headers; ``resume`` rebuilds that request on the entity's first request, so a crash
resumes on the page after the last committed one.

Stop conditions are explicit per style: a short or empty page (offset, page number, range), a
missing or empty token (cursor), a missing link (next link), a reported total reached (offset's
``total_path``, range's ``Content-Range``) or an "empty range" status (HTTP 416 for ``Range``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


@dataclass(frozen=True)
class PageRequest:
    """What to fetch: a path or absolute URL, its query parameters and extra headers."""

    url: str
    params: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The request as JSON data (the loop guard's key; never stored: it has headers)."""
        data: dict[str, Any] = {"url": self.url, "params": self.params}
        if self.headers:
            data["headers"] = self.headers
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PageRequest:
        """A request back from a checkpoint written before checkpoints held positions only."""
        return cls(
            url=str(data["url"]),
            params=dict(data.get("params") or {}),
            headers={str(k): str(v) for k, v in (data.get("headers") or {}).items()},
        )


def json_path(data: Any, path: str | None) -> Any:
    """Follow a dotted path ("data.items", "paging.next.after") into parsed JSON; "" is the root.

    A key that itself contains dots (OData's "@odata.nextLink") is matched whole first.
    """
    if not path:
        return data
    if isinstance(data, dict) and path in data:
        return data[path]
    for part in path.split("."):
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return data


Headers = Mapping[str, str] | None
Position = dict[str, Any]
"""Where a page starts, as JSON data: what a checkpoint holds."""


class _Pager(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: statuses that mean "no more records" rather than an error (HTTP 416 for Range paging)
    end_status: frozenset[int] = frozenset()

    def position(self, req: PageRequest) -> Position:
        """Where ``req`` starts (a request this paginator made)."""
        return {}

    def resume(self, first: PageRequest, position: Position, page_size: int) -> PageRequest:
        """The request at ``position``, built on the entity's first request."""
        return first


class SinglePage(_Pager):
    """The whole result comes in one response."""

    type: Literal["single"] = "single"

    def first(self, req: PageRequest, page_size: int) -> PageRequest:
        """The request as configured: there is one page."""
        return req

    def next(
        self, req: PageRequest, body: Any, headers: Headers, count: int, page_size: int
    ) -> PageRequest | None:
        """None: nothing follows the only page."""
        return None


class OffsetPaginator(_Pager):
    """``offset``/``limit`` in records; stops on a short page or when ``total`` is reached."""

    type: Literal["offset"]
    offset_param: str = "offset"
    limit_param: str = "limit"
    total_path: str | None = None

    def first(self, req: PageRequest, page_size: int) -> PageRequest:
        """The first page: offset 0 and the page size."""
        return PageRequest(
            req.url,
            {**req.params, self.offset_param: 0, self.limit_param: page_size},
            req.headers,
        )

    def next(
        self, req: PageRequest, body: Any, headers: Headers, count: int, page_size: int
    ) -> PageRequest | None:
        """The next offset, or None after a short page or the reported total."""
        if count < page_size:
            return None
        offset = int(req.params.get(self.offset_param, 0)) + count
        total = json_path(body, self.total_path) if self.total_path else None
        if isinstance(total, int) and offset >= total:
            return None
        return PageRequest(req.url, {**req.params, self.offset_param: offset}, req.headers)

    def position(self, req: PageRequest) -> Position:
        """The request's offset."""
        return {"offset": int(req.params.get(self.offset_param, 0))}

    def resume(self, first: PageRequest, position: Position, page_size: int) -> PageRequest:
        """The first request at the stored offset."""
        return PageRequest(
            first.url, {**first.params, self.offset_param: int(position["offset"])}, first.headers
        )


class PageNumberPaginator(_Pager):
    """``page``/``per_page``; stops on a short page or when ``total_pages`` is reached."""

    type: Literal["page_number"]
    page_param: str = "page"
    size_param: str = "per_page"
    first_page: int = 1
    total_pages_path: str | None = None

    def first(self, req: PageRequest, page_size: int) -> PageRequest:
        """The first page number and the page size."""
        return PageRequest(
            req.url,
            {**req.params, self.page_param: self.first_page, self.size_param: page_size},
            req.headers,
        )

    def next(
        self, req: PageRequest, body: Any, headers: Headers, count: int, page_size: int
    ) -> PageRequest | None:
        """The next page number, or None after a short page or the last page."""
        if count < page_size:
            return None
        page = int(req.params.get(self.page_param, self.first_page))
        pages = json_path(body, self.total_pages_path) if self.total_pages_path else None
        if isinstance(pages, int) and page - self.first_page + 1 >= pages:
            return None
        return PageRequest(req.url, {**req.params, self.page_param: page + 1}, req.headers)

    def position(self, req: PageRequest) -> Position:
        """The request's page number."""
        return {"page": int(req.params.get(self.page_param, self.first_page))}

    def resume(self, first: PageRequest, position: Position, page_size: int) -> PageRequest:
        """The first request at the stored page number."""
        return PageRequest(
            first.url, {**first.params, self.page_param: int(position["page"])}, first.headers
        )


class CursorPaginator(_Pager):
    """Next token read from the body at ``cursor_path`` and sent back as ``cursor_param``."""

    type: Literal["cursor"]
    cursor_path: str = "next_cursor"
    cursor_param: str = "cursor"
    limit_param: str | None = "limit"

    def first(self, req: PageRequest, page_size: int) -> PageRequest:
        """The request with the page size (no cursor yet)."""
        params = dict(req.params)
        if self.limit_param:
            params[self.limit_param] = page_size
        return PageRequest(req.url, params, req.headers)

    def next(
        self, req: PageRequest, body: Any, headers: Headers, count: int, page_size: int
    ) -> PageRequest | None:
        """The request with the response's cursor, or None when it is missing or empty."""
        token = json_path(body, self.cursor_path)
        if token in (None, "") or count == 0:
            return None
        return PageRequest(req.url, {**req.params, self.cursor_param: str(token)}, req.headers)

    def position(self, req: PageRequest) -> Position:
        """The request's cursor (None on the first page)."""
        return {"cursor": req.params.get(self.cursor_param)}

    def resume(self, first: PageRequest, position: Position, page_size: int) -> PageRequest:
        """The first request with the stored cursor."""
        if position.get("cursor") is None:
            return first
        return PageRequest(
            first.url, {**first.params, self.cursor_param: str(position["cursor"])}, first.headers
        )


_LINK_NEXT = re.compile(r'<([^>]+)>\s*;[^,]*\brel="?next"?', re.IGNORECASE)


class NextLinkPaginator(_Pager):
    """Absolute or relative next URL from the body (``next_path``) or the ``Link`` header.

    The link is followed only on the source's own origin: the HTTP client refuses any other host
    before sending anything, so credentials never leave.
    """

    type: Literal["next_link"]
    next_path: str | None = None  # None: use the Link header
    page_size_header: str | None = None  # e.g. "Prefer" (OData server-driven paging)
    page_size_format: str = "{page_size}"  # e.g. "odata.maxpagesize={page_size}"

    def first(self, req: PageRequest, page_size: int) -> PageRequest:
        """The request, with the preferred page size header when configured."""
        if self.page_size_header is None:
            return req
        value = self.page_size_format.format(page_size=page_size)
        return PageRequest(req.url, req.params, {**req.headers, self.page_size_header: value})

    def next(
        self, req: PageRequest, body: Any, headers: Headers, count: int, page_size: int
    ) -> PageRequest | None:
        """The response's next link (same origin only), or None when there is none."""
        if self.next_path is not None:
            link = json_path(body, self.next_path)
        else:
            match = _LINK_NEXT.search(headers.get("Link", "") if headers else "")
            link = match.group(1) if match else None
        if not link or count == 0:
            return None
        return PageRequest(str(link), {}, req.headers)  # the link carries its own query

    def position(self, req: PageRequest) -> Position:
        """The link the request follows."""
        return {"link": req.url}

    def resume(self, first: PageRequest, position: Position, page_size: int) -> PageRequest:
        """The stored link, with the first request's headers (the preferred page size)."""
        return PageRequest(str(position["link"]), {}, first.headers)


_CONTENT_RANGE = re.compile(r"^\s*(\w+)\s+(\d+)-(\d+)/(\d+|\*)\s*$")


class RangePaginator(_Pager):
    """HTTP ``Range: <unit>=<start>-<end>`` paging (Tryton: ``records=0-100``, end exclusive).

    Stops on a short page, when ``Content-Range: <unit> a-b/<total>`` says the total is reached,
    or when the server answers 416 (range not satisfiable: past the last record).
    """

    type: Literal["range"]
    unit: str = "records"
    end_inclusive: bool = False
    end_status: frozenset[int] = frozenset({416})

    def _header(self, start: int, page_size: int) -> str:
        end = start + page_size - (1 if self.end_inclusive else 0)
        return f"{self.unit}={start}-{end}"

    def first(self, req: PageRequest, page_size: int) -> PageRequest:
        """The request for the first range of records."""
        return PageRequest(
            req.url, req.params, {**req.headers, "Range": self._header(0, page_size)}
        )

    def next(
        self, req: PageRequest, body: Any, headers: Headers, count: int, page_size: int
    ) -> PageRequest | None:
        """The next range, or None after a short page, the total, or an empty-range status."""
        if count < page_size:
            return None
        start = int(self.position(req)["start"]) + count
        match = _CONTENT_RANGE.match(headers.get("Content-Range", "") if headers else "")
        if match and match.group(4) != "*" and start >= int(match.group(4)):
            return None
        return PageRequest(
            req.url, req.params, {**req.headers, "Range": self._header(start, page_size)}
        )

    def position(self, req: PageRequest) -> Position:
        """The first record of the request's range."""
        return {"start": int(req.headers.get("Range", "=0-").split("=", 1)[1].split("-", 1)[0])}

    def resume(self, first: PageRequest, position: Position, page_size: int) -> PageRequest:
        """The first request for the range starting at the stored record."""
        header = self._header(int(position["start"]), page_size)
        return PageRequest(first.url, first.params, {**first.headers, "Range": header})


PaginatorConfig = Annotated[
    SinglePage
    | OffsetPaginator
    | PageNumberPaginator
    | CursorPaginator
    | NextLinkPaginator
    | RangePaginator,
    Field(discriminator="type"),
]
