"""``FastDumper`` (the model's schema as plain dicts, in pydantic-core) writes what the model
writes, or leaves the record to the model: never a different row, never a row the model would
refuse."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError, field_validator

from concord.errors import RecordRejected
from concord.mapping import load_mapping
from concord.mapping.testing import load_cases
from concord.model import ENTITY_MODELS, CanonicalModel, Customer, ExchangeRate, Order
from concord.pipeline.rows import FastDumper

REPO = Path(__file__).resolve().parents[3]
MAPPING_FILES = sorted(
    p for p in (REPO / "mappings").rglob("*.yaml") if not p.name.endswith(".tests.yaml")
)


def _model_json(model: type[BaseModel], out: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return dict(model.model_validate(out).model_dump(mode="json"))
    except ValidationError:
        return None


def _fast(model: type[BaseModel], out: dict[str, Any]) -> dict[str, Any] | None:
    """What the fast path stores for ``out`` (its JSON read back), None when it leaves it."""
    dumper = FastDumper.for_model(model)
    assert dumper is not None
    values = dumper.validate(out)
    return None if values is None else dict(orjson.loads(dumper.to_json(values)))


def _same_or_left(model: type[BaseModel], out: dict[str, Any]) -> bool:
    fast = _fast(model, out)
    return fast is None or fast == _model_json(model, out)


@pytest.mark.parametrize("entity", sorted(ENTITY_MODELS))
def test_every_canonical_model_has_a_fast_dumper(entity: str) -> None:
    assert FastDumper.for_model(ENTITY_MODELS[entity]) is not None


def test_a_model_with_a_validator_of_its_own_has_none() -> None:
    class Picky(CanonicalModel):
        name: str

        @field_validator("name")
        @classmethod
        def _upper(cls, value: str) -> str:
            return value.upper()

    assert FastDumper.for_model(Picky) is None


def _inbound_cases() -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for path in MAPPING_FILES:
        cases = path.with_name(path.stem + ".tests.yaml")
        if not cases.is_file() or load_mapping(path).direction != "inbound":
            continue
        found += [(path, case) for _line, case in load_cases(cases)]
    return found


def test_every_mapping_fixture_is_stored_as_the_model_writes_it() -> None:
    checked = fast = 0
    for path, case in _inbound_cases():
        mapping = load_mapping(path)
        try:
            out = mapping.apply(case["input"])
        except RecordRejected:
            continue
        out.pop("id", None)
        out["ref"] = {"system": "erp", "entity": "e", "id": "1"}
        model = ENTITY_MODELS[mapping.entity]
        got = _fast(model, out)
        checked += 1
        if got is not None:
            fast += 1
            assert got == _model_json(model, out), f"{path.name}: {case.get('name')}"
    assert checked > 20
    assert fast > checked // 2  # ordinary records take the fast path


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
        {"ordered_at": datetime(2025, 3, 1, tzinfo=timezone(timedelta(hours=2)))},  # to convert
        {"status": "shipped-ish"},
        {"surprise": 1},  # unknown field
        {"lines": [{"quantity": Decimal(2), "unit_price": Decimal(1), "colour": "red"}]},
    ],
)
def test_outputs_the_model_refuses_or_converts_are_left_to_the_model(
    changes: dict[str, Any],
) -> None:
    dumper = FastDumper.for_model(Order)
    assert dumper is not None
    assert dumper.validate(_order(**changes)) is None


def test_text_is_stripped_and_defaults_filled_as_the_model_does() -> None:
    out = {
        "ref": {"system": "e", "entity": "c", "id": "1"},
        "name": "  Acme  ",
        "emails": [" a@b "],
    }
    got = _fast(Customer, out)
    assert got is not None
    assert got["name"] == "Acme"
    assert got["emails"] == ["a@b"]
    assert got["addresses"] == [] and got["is_person"] is False
    assert got == _model_json(Customer, out)
    dumper = FastDumper.for_model(Customer)
    assert dumper is not None
    assert dumper.validate({**out, "name": "   "}) is None  # min_length after stripping


def test_utc_times_keep_their_microseconds() -> None:
    out = _order(ordered_at=datetime(2025, 3, 1, 10, 0, 0, 1500, tzinfo=UTC))
    got = _fast(Order, out)
    assert got is not None
    assert got["ordered_at"] == "2025-03-01T10:00:00.001500Z"
    assert got == _model_json(Order, out)


def test_exchange_rate_bounds_and_dates() -> None:
    out = {
        "ref": {"system": "e", "entity": "r", "id": "1"},
        "currency": "USD",
        "valid_from": date(2025, 1, 1),
        "rate": Decimal("1.0825"),
    }
    assert _fast(ExchangeRate, out) == _model_json(ExchangeRate, out)
    dumper = FastDumper.for_model(ExchangeRate)
    assert dumper is not None
    assert dumper.validate({**out, "rate": Decimal(0)}) is None  # gt=0


decimals = st.decimals(allow_nan=True, allow_infinity=True) | st.decimals(places=2, max_value=10**9)
texts = st.text(max_size=6) | st.sampled_from(["EUR", "eur", "US", "", " X ", "closed", "1.5"])
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
def test_any_value_in_any_order_field_is_stored_as_the_model_writes_it_or_left(
    field: str, value: Any, line_field: str, line_value: Any
) -> None:
    out = _order(**{field: value})
    if field != "lines":
        out["lines"] = [{"quantity": Decimal(1), "unit_price": Decimal(1), line_field: line_value}]
    assert _same_or_left(Order, out)


@settings(max_examples=300, deadline=None)
@given(
    field=st.sampled_from(sorted(set(Customer.model_fields) - {"ref"})),
    value=values | st.lists(texts, max_size=3),
)
def test_any_value_in_any_customer_field_is_stored_as_the_model_writes_it_or_left(
    field: str, value: Any
) -> None:
    out = {"ref": {"system": "e", "entity": "c", "id": "1"}, "name": "Acme", field: value}
    assert _same_or_left(Customer, out)
