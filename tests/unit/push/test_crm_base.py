"""Unit tests of the shared CRM target parts: batch bisection and JSON values."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal

import pytest

from concord.contracts import PushOutcome, PushRecord
from concord.errors import PushError
from connectors.crm.base import bisect, jsonable


def records(n: int) -> list[PushRecord]:
    return [PushRecord(f"K{i}", {"name": f"n{i}"}) for i in range(n)]


class RefusesBad:
    """A fake batch endpoint: any batch holding a bad key is refused whole with ``status``."""

    def __init__(self, bad: set[str], status: int = 400) -> None:
        self.bad, self.status, self.calls = bad, status, 0

    def __call__(self, batch: Sequence[PushRecord]) -> list[PushOutcome]:
        self.calls += 1
        if any(r.key in self.bad for r in batch):
            raise PushError("refused", target="t", status=self.status)
        return [PushOutcome(r.key, ok=True) for r in batch]


def test_bisect_isolates_each_bad_record() -> None:
    send = RefusesBad({"K2", "K5"})
    outcomes = bisect(records(8), send, lambda e: e.message)
    assert [o.key for o in outcomes if not o.ok] == ["K2", "K5"]
    assert sum(o.ok for o in outcomes) == 6
    assert send.calls == 1 + 2 + 4 + 4  # whole, halves, quarters, the bad quarters' halves


def test_bisect_does_not_split_on_errors_that_are_not_about_the_batch() -> None:
    with pytest.raises(PushError):
        bisect(records(4), RefusesBad({"K1"}, status=401), lambda e: e.message)
    with pytest.raises(PushError, match="token"):  # a refused token grant, even a 400
        bisect(
            records(4),
            lambda batch: (_ for _ in ()).throw(
                PushError("token refused", target="t", status=400, auth=True)
            ),
            lambda e: e.message,
        )


def test_jsonable_turns_decimals_and_dates_into_json_values() -> None:
    assert jsonable({"a": Decimal("12.50"), "b": Decimal("3"), "c": date(2025, 1, 2)}) == {
        "a": 12.5,
        "b": 3,
        "c": "2025-01-02",
    }
