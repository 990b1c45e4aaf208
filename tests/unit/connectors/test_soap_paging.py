"""SOAP pagers, incremental filters and date windows, each given canned pages (no server)."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime

import pytest

from connectors.erp.soap_paging import (
    ArgumentIncremental,
    BookmarkPaging,
    DateWindows,
    FilterIncremental,
    PageNumberPaging,
    SingleCall,
)


def recs(*keys: str) -> list[dict[str, str]]:
    return [{"Key": k} for k in keys]


def test_bookmark_sends_the_last_key_and_stops_only_on_an_empty_result() -> None:
    pager = BookmarkPaging()
    first = pager.first(2)
    assert first == {"setSize": 2}
    second = pager.next(first, recs("a", "b"), 2)
    assert second == {"setSize": 2, "bookmarkKey": "b"}
    assert pager.next(second, recs("c"), 2) == {"setSize": 2, "bookmarkKey": "c"}  # short: go on
    assert pager.next(second, [], 2) is None


def test_bookmark_can_stop_on_a_short_page_when_asked() -> None:
    pager = BookmarkPaging(stop_on_short_page=True)
    assert pager.next({"setSize": 2}, recs("c"), 2) is None


def test_bookmark_without_a_key_on_the_last_record_is_an_error() -> None:
    with pytest.raises(ValueError, match="no 'Key'"):
        BookmarkPaging().next({"setSize": 2}, [{"No": "1"}], 2)


def test_page_numbers_count_up_and_stop_on_a_short_page() -> None:
    pager = PageNumberPaging(type="page_number")
    first = pager.first(3)
    assert first == {"pageNo": 1, "pageSize": 3}
    assert pager.next(first, recs("a", "b", "c"), 3) == {"pageNo": 2, "pageSize": 3}
    assert pager.next(first, recs("a"), 3) is None


def test_single_call_never_continues() -> None:
    assert SingleCall(type="single").next({}, recs("a"), 1) is None


def test_filter_incremental_uses_nav_syntax_with_inclusive_ends() -> None:
    inc = FilterIncremental(field="Last_Date_Modified", format="date")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    end = datetime(2026, 2, 1, tzinfo=UTC)
    assert inc.criteria(start, None) == ">=2026-01-01"
    assert inc.criteria(start, end) == "2026-01-01..2026-01-31"
    assert inc.criteria(None, end) == "..2026-01-31"
    assert inc.criteria(None, None) is None


def test_filter_incremental_appends_to_the_configured_filters() -> None:
    inc = FilterIncremental()
    base = {"filter": [{"Field": "No", "Criteria": ""}]}
    out = inc.apply(base, "filter", datetime(2026, 1, 1, tzinfo=UTC), None)
    assert out["filter"] == [
        {"Field": "No", "Criteria": ""},
        {"Field": "Last_Date_Modified", "Criteria": ">=2026-01-01"},
    ]
    assert base["filter"] == [{"Field": "No", "Criteria": ""}]  # not mutated


def test_argument_incremental_sends_start_and_end_arguments() -> None:
    inc = ArgumentIncremental(type="arguments", start_arg="changedSince", end_arg="changedBefore")
    out = inc.apply(
        {}, "filter", datetime(2026, 1, 1, 8, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    )
    assert out == {"changedSince": "2026-01-01T08:00:00Z", "changedBefore": "2026-01-02T00:00:00Z"}


def test_date_windows_cover_the_range_without_gaps() -> None:
    windows = DateWindows(days=10, start=date(2026, 1, 1))
    end = datetime(2026, 1, 25, tzinfo=UTC)
    slices = list(windows.slices(None, end))
    assert slices[0][0] == datetime(2026, 1, 1, tzinfo=UTC)
    assert slices[-1][1] == end
    assert all(a[1] == b[0] for a, b in itertools.pairwise(slices))
    assert len(slices) == 3
