"""Dated exchange rates, business dates and their config: the rules docs/customer360.md states."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from concord.config import PipelineConfig
from concord.contracts import Exclusion
from concord.customer360.dates import BusinessCalendar
from concord.customer360.fx import CSV_SET, FxTable, Rate, RateSet, csv_set
from concord.errors import ConfigError


def tryton_set() -> RateSet:
    rates = RateSet("tryton", None)
    rates.add("EUR", Rate(date(1, 1, 1), Decimal("2.0"), Decimal(1)))
    rates.add("USD", Rate(date(2026, 1, 1), Decimal("1.0"), Decimal(1)))
    rates.add("USD", Rate(date(2026, 11, 20), Decimal("1.25"), Decimal(1)))
    return rates


def test_a_rate_applies_from_its_date_until_the_next_one() -> None:
    fx = FxTable([tryton_set()])
    before = fx.convert(Decimal("120"), "USD", "EUR", date(2026, 11, 19), "tryton")
    on = fx.convert(Decimal("120"), "USD", "EUR", date(2026, 11, 20), "tryton")
    assert before is not None and before.amount == Decimal("240.00")
    assert on is not None and on.amount == Decimal("192.00")  # 120 * 2.0 / 1.25
    assert on.note == "from 2026-11-20: 1 USD = 1.6 EUR" and on.source == "tryton"


def test_a_missing_rate_is_counted_per_currency_and_date_not_guessed() -> None:
    fx = FxTable([tryton_set()])
    assert fx.convert(Decimal(1), "USD", "EUR", date(2025, 6, 1), "tryton") is None
    assert fx.convert(Decimal(1), "GBP", "EUR", date(2026, 6, 1), "tryton") is None
    assert fx.missing == {("USD", date(2025, 6, 1)): 1, ("GBP", date(2026, 6, 1)): 1}


def test_the_documents_own_source_comes_first_then_the_csv_then_the_static_rates() -> None:
    csv = RateSet(CSV_SET, "EUR")
    csv.add("USD", Rate(date(2020, 1, 1), Decimal(1), Decimal("0.5")))
    fx = FxTable([csv, tryton_set()])
    own = fx.convert(Decimal(10), "USD", "EUR", date(2026, 2, 1), "tryton")
    other = fx.convert(Decimal(10), "USD", "EUR", date(2026, 2, 1), "nav")
    assert own is not None and own.amount == Decimal("20.00")
    assert other is not None and (other.amount, other.source) == (Decimal("5.00"), CSV_SET)


def test_conversions_round_half_even_to_the_cent_as_tryton_does() -> None:
    rates = RateSet("csv", "EUR")
    rates.add("USD", Rate(date(2026, 1, 1), Decimal(1), Decimal("0.5")))
    fx = FxTable([rates])
    half = fx.convert(Decimal("0.05"), "USD", "EUR", date(2026, 1, 2))
    assert half is not None and half.amount == Decimal("0.02")  # 0.025 -> 0.02


def test_a_bad_csv_row_is_an_error_naming_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "rates.csv"
    path.write_text("date,currency,rate\n2026-01-01,USD,0.9\n2026-02-01,USD,-1\n")
    with pytest.raises(ConfigError, match=r"rates.csv:3: rate '-1' must be a number > 0"):
        csv_set(path, "EUR")
    path.write_text("day,ccy,value\n")
    with pytest.raises(ConfigError, match="columns date,currency,rate"):
        csv_set(path, "EUR")


def test_a_date_only_value_is_its_own_business_date_and_a_time_is_converted() -> None:
    berlin, new_york = BusinessCalendar("Europe/Berlin"), BusinessCalendar("America/New_York")
    due = datetime(2026, 11, 30, tzinfo=UTC)  # an ERP date: midnight UTC
    assert berlin.date_of(due) == new_york.date_of(due) == date(2026, 11, 30)
    late = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)
    assert berlin.date_of(late) == date(2026, 12, 1)
    assert new_york.date_of(late) == date(2026, 11, 30)
    assert new_york.today(datetime(2026, 12, 1, 3, 0, tzinfo=UTC)) == date(2026, 11, 30)


def test_the_config_refuses_an_unknown_time_zone() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        PipelineConfig.model_validate({"sources": {}, "timezone": "Mars/Olympus"})


def test_exclusion_values_compare_as_text() -> None:
    rule = Exclusion.model_validate({"path": "id", "values": [1, "C-2"]})
    assert rule.values == ["1", "C-2"] and rule.describe() == "id in 1, C-2"
    assert Exclusion.model_validate({"path": "code", "values": 7}).values == ["7"]
