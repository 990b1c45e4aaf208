"""Paginators for REST sources: each, given the last request and response, returns the next
request or None (stop). They are stateless; the source keeps the loop guard and stores the next
request as the checkpoint, so a crash resumes on the page after the last committed one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


@dataclass(frozen=True)
class PageRequest:
    """What to fetch: a path or absolute URL and its query parameters."""

    url: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "params": self.params}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PageRequest:
        return cls(url=str(data["url"]), params=dict(data.get("params") or {}))


def json_path(data: Any, path: str | None) -> Any:
    """Follow a dotted path ("data.items", "paging.next.after") into parsed JSON; "" is the root."""
    if not path:
        return data
    for part in path.split("."):
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return data


class _Pager(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SinglePage(_Pager):
    type: Literal["single"] = "single"

    def first(self, req: PageRequest, page_size: int) -> PageRequest:
        return req

    def next(
        self, req: PageRequest, body: Any, headers: Any, count: int, page_size: int
    ) -> PageRequest | None:
        return None


class OffsetPaginator(_Pager):
    """``offset``/``limit`` in records; stops on a short page or when ``total`` is reached."""

    type: Literal["offset"]
    offset_param: str = "offset"
    limit_param: str = "limit"
    total_path: str | None = None

    def first(self, req: PageRequest, page_size: int) -> PageRequest:
        return PageRequest(
            req.url, {**req.params, self.offset_param: 0, self.limit_param: page_size}
        )

    def next(
        self, req: PageRequest, body: Any, headers: Any, count: int, page_size: int
    ) -> PageRequest | None:
        if count < page_size:
            return None
        offset = int(req.params.get(self.offset_param, 0)) + count
        total = json_path(body, self.total_path) if self.total_path else None
        if isinstance(total, int) and offset >= total:
            return None
        return PageRequest(req.url, {**req.params, self.offset_param: offset})


class PageNumberPaginator(_Pager):
    type: Literal["page_number"]
    page_param: str = "page"
    size_param: str = "per_page"
    first_page: int = 1

    def first(self, req: PageRequest, page_size: int) -> PageRequest:
        return PageRequest(
            req.url, {**req.params, self.page_param: self.first_page, self.size_param: page_size}
        )

    def next(
        self, req: PageRequest, body: Any, headers: Any, count: int, page_size: int
    ) -> PageRequest | None:
        if count < page_size:
            return None
        page = int(req.params.get(self.page_param, self.first_page)) + 1
        return PageRequest(req.url, {**req.params, self.page_param: page})


class CursorPaginator(_Pager):
    """Next token read from the body at ``cursor_path`` and sent back as ``cursor_param``."""

    type: Literal["cursor"]
    cursor_path: str = "next_cursor"
    cursor_param: str = "cursor"
    limit_param: str | None = "limit"

    def first(self, req: PageRequest, page_size: int) -> PageRequest:
        params = dict(req.params)
        if self.limit_param:
            params[self.limit_param] = page_size
        return PageRequest(req.url, params)

    def next(
        self, req: PageRequest, body: Any, headers: Any, count: int, page_size: int
    ) -> PageRequest | None:
        token = json_path(body, self.cursor_path)
        if token in (None, "") or count == 0:
            return None
        return PageRequest(req.url, {**req.params, self.cursor_param: str(token)})


_LINK_NEXT = re.compile(r'<([^>]+)>\s*;[^,]*\brel="?next"?', re.IGNORECASE)


class NextLinkPaginator(_Pager):
    """Absolute or relative next URL from the body (``next_path``) or the ``Link`` header."""

    type: Literal["next_link"]
    next_path: str | None = None  # None: use the Link header

    def first(self, req: PageRequest, page_size: int) -> PageRequest:
        return req

    def next(
        self, req: PageRequest, body: Any, headers: Any, count: int, page_size: int
    ) -> PageRequest | None:
        if self.next_path is not None:
            link = json_path(body, self.next_path)
        else:
            match = _LINK_NEXT.search(headers.get("Link", "") if headers else "")
            link = match.group(1) if match else None
        if not link or count == 0:
            return None
        return PageRequest(str(link), {})  # the link carries its own query


PaginatorConfig = Annotated[
    SinglePage | OffsetPaginator | PageNumberPaginator | CursorPaginator | NextLinkPaginator,
    Field(discriminator="type"),
]
