"""The sandbox's subset of NAV filter syntax (what the SOAP source's filters are tested against)."""

from __future__ import annotations

import pytest

from sandbox.soap_erp import SoapFault, compile_criteria


@pytest.mark.parametrize(
    ("field", "criteria", "value", "expected"),
    [
        ("Last_Date_Modified", ">=2026-01-01", "2026-01-01", True),
        ("Last_Date_Modified", ">=2026-01-01", "2025-12-31", False),
        ("Last_Date_Modified", "2026-01-01..2026-01-31", "2026-01-31", True),
        ("Last_Date_Modified", "2026-01-01..2026-01-31", "2026-02-01", False),
        ("Last_Date_Modified", "..2026-01-31", "2020-01-01", True),
        ("Last_Date_Modified", "2026-01-01..", None, False),
        ("Name", "*GmbH*", "Kranich Bau GmbH", True),
        ("Name", "*GmbH*", "Kranich Bau GMBH", False),
        ("Name", "@*gmbh*", "Kranich Bau GMBH", True),
        ("Document_Type", "Payment|Refund", "Refund", True),
        ("Document_Type", "<>Payment", "Invoice", True),
        ("Amount", ">100", "100.50", True),
        ("Amount", ">100", "99", False),
        ("No", "", "anything", True),
    ],
)
def test_nav_criteria(field: str, criteria: str, value: str | None, expected: bool) -> None:
    assert compile_criteria(field, criteria)(value) is expected


def test_a_bad_date_in_a_filter_is_a_fault() -> None:
    with pytest.raises(SoapFault, match="not a valid date for Last_Date_Modified"):
        compile_criteria("Last_Date_Modified", ">=tomorrow")
