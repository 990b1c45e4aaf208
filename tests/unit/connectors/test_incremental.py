"""Window styles: what each sends for a window, and its order by cursor then id."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import TypeAdapter

from concord.contracts import Window
from connectors.erp import tryton
from connectors.erp.incremental import (
    IncrementalConfig,
    ODataFilterWindow,
    ParamsWindow,
    TrytonDomainWindow,
)

START = datetime(2026, 1, 2, 3, 4, 5, 600000, tzinfo=UTC)
END = datetime(2026, 1, 3, tzinfo=UTC)
ADAPTER: TypeAdapter[Any] = TypeAdapter(IncrementalConfig)


def test_a_section_without_style_is_query_params() -> None:
    style = ADAPTER.validate_python({"start_param": "since"})
    assert isinstance(style, ParamsWindow)


def test_params_send_start_and_end_in_the_chosen_format() -> None:
    style = ParamsWindow(start_param="since", end_param="until", format="epoch")
    params = style.apply({"x": 1}, Window(START, END))
    assert params == {"x": 1, "since": "1767323045", "until": "1767398400"}


def test_params_send_nothing_for_an_open_window() -> None:
    assert ParamsWindow(start_param="since").apply({}, Window(None, None)) == {}


def test_tryton_domain_appends_the_window_to_the_static_domain() -> None:
    style = ADAPTER.validate_python({"style": "tryton_domain"})
    assert isinstance(style, TrytonDomainWindow)
    params = style.apply({"d": [["type", "=", "out"]], "f": ["number"]}, Window(START, END))
    domain = tryton.decode_param(params["d"])
    assert domain[0] == ["type", "=", "out"]
    assert domain[1][0:2] == ["last_modified_at", ">="]
    assert domain[1][2] == {
        "__class__": "datetime",
        "year": 2026,
        "month": 1,
        "day": 2,
        "hour": 3,
        "minute": 4,
        "second": 5,
        "microsecond": 600000,
    }
    assert domain[2][0:2] == ["last_modified_at", "<"]
    assert tryton.decode_param(params["o"]) == [["last_modified_at", "ASC"], ["id", "ASC"]]
    assert params["f"] == ["number"]


def test_tryton_domain_is_padded_url_safe_base64() -> None:
    params = TrytonDomainWindow(style="tryton_domain").apply({}, Window(START, None))
    assert len(params["d"]) % 4 == 0 and "+" not in params["d"] and "/" not in params["d"]


def test_tryton_full_refresh_sends_only_the_static_domain_and_order() -> None:
    style = TrytonDomainWindow(style="tryton_domain")
    assert "d" not in style.apply({}, Window(None, None))
    params = style.apply({"d": [["kind", "=", "receivable"]]}, Window(None, None))
    assert tryton.decode_param(params["d"]) == [["kind", "=", "receivable"]]


def test_odata_filter_joins_the_static_filter_with_and() -> None:
    style = ODataFilterWindow(style="odata_filter")
    params = style.apply({"$filter": "blocked eq ' '"}, Window(START, END))
    assert params["$filter"] == (
        "(blocked eq ' ') and lastModifiedDateTime ge 2026-01-02T03:04:05.600000Z "
        "and lastModifiedDateTime lt 2026-01-03T00:00:00.000000Z"
    )
    assert params["$orderby"] == "lastModifiedDateTime asc,id asc"


def test_odata_filter_can_use_gt_as_documented_by_microsoft() -> None:
    style = ODataFilterWindow(style="odata_filter", start_operator="gt")
    assert " gt " in style.apply({}, Window(START, None))["$filter"]


def test_an_unknown_style_is_refused() -> None:
    with pytest.raises(ValueError):
        ADAPTER.validate_python({"style": "graphql"})


def test_tryton_seek_clause_asks_strictly_after_the_last_cursor_and_id() -> None:
    from connectors.erp.incremental import TrytonDomainWindow

    style = TrytonDomainWindow(style="tryton_domain")
    start = datetime(2026, 11, 1, tzinfo=UTC)
    out = style.apply(
        {"d": [["type", "=", "out"]]}, Window(start, None), ("2026-11-02T03:04:05.000006Z", 41)
    )
    domain = tryton.decode_param(out["d"])
    at = tryton.encode_datetime(datetime(2026, 11, 2, 3, 4, 5, 6, tzinfo=UTC))
    assert domain[0] == ["type", "=", "out"]
    assert domain[-1] == [
        "OR",
        ["last_modified_at", ">", at],
        [["last_modified_at", "=", at], ["id", ">", 41]],
    ]
    assert style.seeks and not TrytonDomainWindow(style="tryton_domain", paging="offset").seeks


def test_odata_seek_clause_joins_the_window_filter() -> None:
    from connectors.erp.incremental import ODataFilterWindow

    style = ODataFilterWindow(style="odata_filter", seek=True)
    out = style.apply({}, Window(None, None), ("2026-11-02T00:00:00Z", "a'b"))
    assert out["$filter"] == (
        "(lastModifiedDateTime gt 2026-11-02T00:00:00.000000Z or (lastModifiedDateTime eq "
        "2026-11-02T00:00:00.000000Z and id gt 'a''b'))"
    )
    assert not ODataFilterWindow(style="odata_filter").seeks
