"""Each paginator, fed canned responses: the next request it asks for, and when it stops."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter

from connectors.erp.pagination import (
    CursorPaginator,
    NextLinkPaginator,
    OffsetPaginator,
    PageNumberPaginator,
    PageRequest,
    PaginatorConfig,
    RangePaginator,
    json_path,
)

START = PageRequest("rest/model/party.party", {"f": ["name"]})


def test_offset_advances_by_the_records_received() -> None:
    pager = OffsetPaginator(type="offset")
    first = pager.first(START, 50)
    assert first.params == {"f": ["name"], "offset": 0, "limit": 50}
    nxt = pager.next(first, {}, None, 50, 50)
    assert nxt is not None and nxt.params["offset"] == 50


def test_offset_stops_on_a_short_page_and_at_the_total() -> None:
    pager = OffsetPaginator(type="offset", total_path="meta.total")
    first = pager.first(START, 50)
    assert pager.next(first, {}, None, 49, 50) is None
    assert pager.next(first, {"meta": {"total": 50}}, None, 50, 50) is None


def test_page_number_counts_pages_and_stops_at_total_pages() -> None:
    pager = PageNumberPaginator(type="page_number", total_pages_path="pages")
    first = pager.first(START, 10)
    second = pager.next(first, {"pages": 3}, None, 10, 10)
    assert second is not None and second.params["page"] == 2
    third = pager.next(second, {"pages": 3}, None, 10, 10)
    assert third is not None and pager.next(third, {"pages": 3}, None, 10, 10) is None


def test_cursor_sends_back_the_token_and_stops_without_one() -> None:
    pager = CursorPaginator(type="cursor", cursor_path="paging.next.after", cursor_param="after")
    first = pager.first(START, 100)
    nxt = pager.next(first, {"paging": {"next": {"after": "abc"}}}, None, 100, 100)
    assert nxt is not None and nxt.params["after"] == "abc"
    assert pager.next(first, {"paging": {}}, None, 100, 100) is None
    assert pager.next(first, {"paging": {"next": {"after": ""}}}, None, 5, 100) is None


def test_cursor_stops_on_an_empty_page_even_with_a_token() -> None:
    pager = CursorPaginator(type="cursor")
    assert pager.next(pager.first(START, 10), {"next_cursor": "x"}, None, 0, 10) is None


def test_next_link_from_a_dotted_odata_key() -> None:
    pager = NextLinkPaginator(type="next_link", next_path="@odata.nextLink")
    link = "http://erp/api/customers?$skiptoken=abc"
    nxt = pager.next(START, {"@odata.nextLink": link, "value": [1]}, None, 1, 10)
    assert nxt == PageRequest(link, {}, {})
    assert pager.next(START, {"value": []}, None, 0, 10) is None


def test_next_link_from_the_link_header() -> None:
    pager = NextLinkPaginator(type="next_link")
    headers = {"Link": '<https://erp/x?page=1>; rel="prev", <https://erp/x?page=3>; rel="next"'}
    nxt = pager.next(START, [], headers, 10, 10)
    assert nxt is not None and nxt.url == "https://erp/x?page=3"
    assert pager.next(START, [], {"Link": '<https://erp/x?page=1>; rel="prev"'}, 10, 10) is None


def test_next_link_keeps_the_page_size_header_on_every_page() -> None:
    pager = NextLinkPaginator(
        type="next_link",
        next_path="next",
        page_size_header="Prefer",
        page_size_format="odata.maxpagesize={page_size}",
    )
    first = pager.first(START, 500)
    assert first.headers == {"Prefer": "odata.maxpagesize=500"}
    nxt = pager.next(first, {"next": "http://erp/p2"}, None, 500, 500)
    assert nxt is not None and nxt.headers == {"Prefer": "odata.maxpagesize=500"}


def test_range_asks_for_records_with_an_exclusive_end() -> None:
    pager = RangePaginator(type="range")
    first = pager.first(START, 100)
    assert first.headers == {"Range": "records=0-100"}
    nxt = pager.next(first, [], {"Content-Range": "records 0-100/*"}, 100, 100)
    assert nxt is not None and nxt.headers == {"Range": "records=100-200"}
    assert nxt.params == START.params


def test_range_stops_at_the_total_of_content_range_or_a_short_page() -> None:
    pager = RangePaginator(type="range")
    first = pager.first(START, 100)
    assert pager.next(first, [], {"Content-Range": "records 0-100/100"}, 100, 100) is None
    assert pager.next(first, [], {}, 99, 100) is None
    assert 416 in pager.end_status


def test_range_with_an_inclusive_end() -> None:
    first = RangePaginator(type="range", unit="items", end_inclusive=True).first(START, 25)
    assert first.headers == {"Range": "items=0-24"}


def test_a_checkpoint_round_trips_with_headers() -> None:
    req = PageRequest("x", {"a": [1, 2]}, {"Range": "records=5-10"})
    assert PageRequest.from_json(req.to_json()) == req


@pytest.mark.parametrize(
    ("data", "path", "expected"),
    [
        ({"a": {"b": [1, {"c": 2}]}}, "a.b.1.c", 2),
        ({"@odata.nextLink": "u"}, "@odata.nextLink", "u"),
        ({"a": 1}, "a.b", None),
        ([1, 2], "", [1, 2]),
    ],
)
def test_json_path(data: Any, path: str, expected: Any) -> None:
    assert json_path(data, path) == expected


def test_paginators_are_picked_by_type_and_reject_unknown_keys() -> None:
    adapter: TypeAdapter[Any] = TypeAdapter(PaginatorConfig)
    assert isinstance(adapter.validate_python({"type": "range"}), RangePaginator)
    with pytest.raises(ValueError, match="extra"):
        adapter.validate_python({"type": "range", "units": "records"})


CONFIGURED_HEADERS = {"X-Tenant": "acme"}  # configured headers: rebuilt from config, never stored


@pytest.mark.parametrize(
    ("pager", "body", "headers"),
    [
        (OffsetPaginator(type="offset"), {}, None),
        (PageNumberPaginator(type="page_number"), {}, None),
        (CursorPaginator(type="cursor"), {"next_cursor": "c-2"}, None),
        (NextLinkPaginator(type="next_link", next_path="next"), {"next": "/x?page=2"}, None),
        (
            NextLinkPaginator(
                type="next_link", page_size_header="Prefer", page_size_format="p={page_size}"
            ),
            {},
            {"Link": '</x?page=2>; rel="next"'},
        ),
        (RangePaginator(type="range"), {}, {"Content-Range": "records 0-9/95"}),
    ],
    ids=["offset", "page_number", "cursor", "next_link", "link_header", "range"],
)
def test_a_position_holds_no_headers_and_resumes_the_same_request(
    pager: Any, body: Any, headers: Any
) -> None:
    first = pager.first(PageRequest("/x", {"f": ["name"]}, CONFIGURED_HEADERS), 10)
    nxt = pager.next(first, body, headers, 10, 10)
    assert nxt is not None
    position = pager.position(nxt)
    assert "acme" not in repr(position) and "X-Tenant" not in repr(position)
    assert pager.resume(first, position, 10) == nxt
