"""``FastDumper`` writes what pydantic writes, or leaves the record to pydantic: never a
different row, never a row pydantic would refuse."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from concord.errors import RecordRejected
from concord.hashing import digest, json_digest
from concord.mapping import load_mapping
from concord.mapping.testing import load_cases
from concord.model import ENTITY_MODELS, Customer, ExchangeRate, Order
from concord.pipeline.rows import FastDumper, row_json

REPO = Path(__file__).resolve().parents[3]
MAPPING_FILES = sorted(
    p for p in (REPO / "mappings").rglob("*.yaml") if not p.name.endswith(".tests.yaml")
)


def _pydantic(model: type[Any], out: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return dict(model.model_validate(out).model_dump(mode="json"))
    except ValidationError:
        return None


def _json(values: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the row stores of the fast path's values, read back."""
    return None if values is None else dict(orjson.loads(row_json(values)))


def _same_or_unsure(model: type[Any], out: dict[str, Any]) -> bool:
    dumper = FastDumper.for_model(model)
    assert dumper is not None
    fast = dumper.dump(out)
    if fast is None:
        return True
    want = _pydantic(model, out)
    return want is not None and row_json(fast) == orjson.dumps(want, option=orjson.OPT_SORT_KEYS)


@pytest.mark.parametrize("entity", sorted(ENTITY_MODELS))
def test_every_canonical_model_has_a_fast_dumper(entity: str) -> None:
    assert FastDumper.for_model(ENTITY_MODELS[entity]) is not None


def _inbound_cases() -> list[tuple[str, int, dict[str, Any]]]:
    found = []
    for path in MAPPING_FILES:
        cases = path.with_name(path.stem + ".tests.yaml")
        if not cases.is_file():
            continue
        mapping = load_mapping(path)
        if mapping.direction != "inbound":
            continue
        for line, case in load_cases(cases):
            found.append((str(path.relative_to(REPO)), line, case))
    return found


def test_every_mapping_fixture_dumps_as_pydantic_does() -> None:
    checked = fast = 0
    for rel, _line, case in _inbound_cases():
        mapping = load_mapping(REPO / rel)
        try:
            out = mapping.apply(case["input"])
        except RecordRejected:
            continue
        out.pop("id", None)
        out["ref"] = {"system": "erp", "entity": "e", "id": "1"}
        model = ENTITY_MODELS[mapping.entity]
        dumper = FastDumper.for_model(model)
        assert dumper is not None
        got = dumper.dump(out)
        checked += 1
        if got is not None:
            fast += 1
            assert _json(got) == _pydantic(model, out), f"{rel}: {case.get('name')}"
            assert digest(row_json(got)) == json_digest(_pydantic(model, out))
    assert checked > 20
    assert fast > checked // 2  # the fixtures are ordinary records: most take the fast path


def _order(**changes: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ref": {"system": "erp", "entity": "orders", "id": "SO-1"},
        "number": "SO-1",
        "customer_id": "C-1",
        "ordered_at": datetime(2025, 3, 1, 10, 15, tzinfo=UTC),
        "status": "closed",
        "currency": "EUR",
        "net_total": Decimal("100.00"),
        "gross_total": Decimal("119.00"),
        "lines": [{"quantity": Decimal(2), "unit_price": Decimal("50.00")}],
    }
    out.update(changes)
    return out


@pytest.mark.parametrize(
    "changes",
    [
        {"currency": "eur"},  # pattern
        {"net_total": Decimal("1.1234567")},  # more decimals than money has
        {"net_total": Decimal("1E+30")},
        {"net_total": Decimal("NaN")},
        {"ordered_at": datetime(2025, 3, 1)},  # naive
        {"status": "shipped-ish"},
        {"surprise": 1},  # unknown field
        {"number": 12},  # not text
        {"lines": [{"quantity": "2", "unit_price": Decimal(1)}]},
        {"lines": [{"quantity": Decimal(2), "unit_price": Decimal(1), "colour": "red"}]},
    ],
)
def test_outputs_pydantic_would_refuse_or_convert_are_left_to_pydantic(
    changes: dict[str, Any],
) -> None:
    dumper = FastDumper.for_model(Order)
    assert dumper is not None
    assert dumper.dump(_order(**changes)) is None


def test_text_is_stripped_and_defaults_filled_as_pydantic_does() -> None:
    out = {
        "ref": {"system": "e", "entity": "c", "id": "1"},
        "name": "  Acme  ",
        "emails": [" a@b "],
    }
    dumper = FastDumper.for_model(Customer)
    assert dumper is not None
    got = _json(dumper.dump(out))
    assert got is not None
    assert got["name"] == "Acme"
    assert got["emails"] == ["a@b"]
    assert got == _pydantic(Customer, out)
    assert dumper.dump({**out, "name": "   "}) is None  # min_length after stripping


def test_datetimes_in_other_zones_come_out_in_utc() -> None:
    at = datetime(2025, 3, 1, 12, 0, 0, 1500, tzinfo=timezone(timedelta(hours=2)))
    out = _order(ordered_at=at)
    dumper = FastDumper.for_model(Order)
    assert dumper is not None
    got = _json(dumper.dump(out))
    assert got is not None
    assert got["ordered_at"] == "2025-03-01T10:00:00.001500Z"
    assert got == _pydantic(Order, out)


def test_exchange_rate_bounds_and_dates() -> None:
    out = {
        "ref": {"system": "e", "entity": "r", "id": "1"},
        "currency": "USD",
        "valid_from": date(2025, 1, 1),
        "rate": Decimal("1.0825"),
    }
    dumper = FastDumper.for_model(ExchangeRate)
    assert dumper is not None
    assert _json(dumper.dump(out)) == _pydantic(ExchangeRate, out)
    assert dumper.dump({**out, "rate": Decimal(0)}) is None  # gt=0


decimals = st.decimals(allow_nan=True, allow_infinity=True) | st.decimals(places=2, max_value=10**9)
texts = st.text(max_size=6) | st.sampled_from(["EUR", "eur", "US", "", " X ", "closed"])
values = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | texts
    | decimals
    | st.datetimes(timezones=st.none() | st.timezones())
    | st.dates()
)


@settings(max_examples=400, deadline=None)
@given(
    field=st.sampled_from(sorted(set(Order.model_fields) - {"ref"})),
    value=values,
    line_field=st.sampled_from(["quantity", "unit_price", "sku", "net_amount"]),
    line_value=values,
)
def test_any_value_in_any_order_field_is_dumped_as_pydantic_or_left(
    field: str, value: Any, line_field: str, line_value: Any
) -> None:
    out = _order(**{field: value})
    if field != "lines":
        out["lines"] = [{"quantity": Decimal(1), "unit_price": Decimal(1), line_field: line_value}]
    assert _same_or_unsure(Order, out)


@settings(max_examples=300, deadline=None)
@given(
    field=st.sampled_from(sorted(set(Customer.model_fields) - {"ref"})),
    value=values | st.lists(texts, max_size=3),
)
def test_any_value_in_any_customer_field_is_dumped_as_pydantic_or_left(
    field: str, value: Any
) -> None:
    out = {"ref": {"system": "e", "entity": "c", "id": "1"}, "name": "Acme", field: value}
    assert _same_or_unsure(Customer, out)
