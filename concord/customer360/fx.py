"""Dated exchange rates: each document converts to the base currency at its own date.

Rates come from three places, tried in this order for a document of source S:

1. S's own rates (canonical ``exchange_rates`` rows mapped from the ERP: Tryton's
   ``currency.currency.rate``, NAV's Currency Exchange Rates), so a figure agrees with what the
   ERP booked;
2. the CSV file of ``fx.rates_csv`` (``date,currency,rate``: one unit worth ``rate`` of the base);
3. the static ``fx_rates`` of the config (valid since forever), then other sources' rates.

A rate applies from its ``valid_from`` date until the currency's next one (the rule of both
Tryton and NAV). Within one set, X converts to Y as ``amount * rate_X * units_Y / (units_X *
rate_Y)``, which is Tryton's ``amount * to.rate / from.rate`` for a set on an unnamed common base
and NAV's ``FCY / Exchange_Rate_Amount * Relational_Exch_Rate_Amount`` for one on the local
currency; the result is rounded half-even to the cent, as Tryton rounds. A conversion that no set
can make is not guessed: it returns None and is counted under (currency, date) in ``missing``.
"""

from __future__ import annotations

import csv
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select

from concord.config import PipelineConfig
from concord.errors import ConfigError
from concord.store import tables as t

CENT = Decimal("0.01")
CSV_SET = "rates_csv"
STATIC_SET = "fx_rates"


@dataclass(frozen=True, slots=True)
class Rate:
    """From ``valid_from``, ``units`` of the currency are worth ``rate`` of the set's base."""

    valid_from: date
    units: Decimal
    rate: Decimal


_PAR = Rate(date.min, Decimal(1), Decimal(1))


@dataclass
class RateSet:
    """The rates of one source on one base (None: an unnamed common base, as in Tryton)."""

    name: str
    base: str | None
    rates: dict[str, list[Rate]] = field(default_factory=dict)
    _starts: dict[str, list[date]] = field(default_factory=dict)

    def add(self, currency: str, rate: Rate) -> None:
        """Add one rate (call ``seal`` before looking rates up)."""
        self.rates.setdefault(currency, []).append(rate)

    def seal(self) -> None:
        """Sort each currency's rates by date for lookups."""
        for currency, rates in self.rates.items():
            rates.sort(key=lambda r: r.valid_from)
            self._starts[currency] = [r.valid_from for r in rates]

    def at(self, currency: str, on: date) -> Rate | None:
        """The currency's rate in force on ``on`` (the base itself is always at par)."""
        if currency == self.base:
            return _PAR
        starts = self._starts.get(currency)
        if not starts:
            return None
        i = bisect_right(starts, on)
        return self.rates[currency][i - 1] if i else None


@dataclass(frozen=True, slots=True)
class Converted:
    """An amount converted, and the rate that did it (``note`` is empty for no conversion)."""

    amount: Decimal
    source: str = ""
    note: str = ""


class FxTable:
    """Converts document amounts at their own dates; remembers what it could not convert."""

    def __init__(self, sets: Iterable[RateSet]) -> None:
        self.sets = list(sets)
        for s in self.sets:
            s.seal()
        self.missing: Counter[tuple[str, date]] = Counter()
        # when set, misses are also counted here (one customer's, kept for incremental builds)
        self.tally: Counter[tuple[str, date]] | None = None
        self._order: dict[str | None, list[RateSet]] = {}
        self._found: dict[tuple[str, str, date, str | None], tuple[RateSet, Rate, Rate, str]] = {}

    def rate_rows(self) -> list[list[str]]:
        """Every rate as ``[set, base, currency, valid_from, units, rate]``, sorted.

        A build remembers the rates its figures used, to compare with the next build's.
        """
        rows = [
            [s.name, s.base or "", currency, r.valid_from.isoformat(), str(r.units), str(r.rate)]
            for s in self.sets
            for currency, rates in s.rates.items()
            for r in rates
        ]
        return sorted(rows)

    def _sets_for(self, source: str | None) -> list[RateSet]:
        order = self._order.get(source)
        if order is None:
            own = [s for s in self.sets if s.name == source]
            fixed = [s for s in self.sets if s.name in (CSV_SET, STATIC_SET)]
            fixed.sort(key=lambda s: s.name != CSV_SET)
            rest = sorted((s for s in self.sets if s not in own and s not in fixed), key=_name)
            order = self._order[source] = own + fixed + rest
        return order

    def convert(
        self, amount: Decimal, currency: str, to: str, on: date, source: str | None = None
    ) -> Converted | None:
        """``amount`` of ``currency`` in ``to`` at the rates of ``on``, or None (counted)."""
        if currency == to:
            return Converted(amount)
        key = (currency, to, on, source)
        found = self._found.get(key) or self._find(key)
        if found is None:
            self.missing[(currency, on)] += 1
            if self.tally is not None:
                self.tally[(currency, on)] += 1
            return None
        rate_set, a, b, note = found
        value = amount * a.rate * b.units / (a.units * b.rate)
        return Converted(value.quantize(CENT, rounding=ROUND_HALF_EVEN), rate_set.name, note)

    def _find(
        self, key: tuple[str, str, date, str | None]
    ) -> tuple[RateSet, Rate, Rate, str] | None:
        """The first rate set that converts ``currency`` to ``to`` on the date (remembered)."""
        currency, to, on, source = key
        for rate_set in self._sets_for(source):
            a = rate_set.at(currency, on)
            b = rate_set.at(to, on) if a is not None else None
            if a is not None and b is not None:
                found = self._found[key] = (rate_set, a, b, _note(currency, to, a, b))
                return found
        return None


def _name(rate_set: RateSet) -> str:
    return rate_set.name


def _note(currency: str, to: str, a: Rate, b: Rate) -> str:
    """'from 2026-11-20: 1 USD = 1.6 EUR', the effective rate as finance reads it."""
    effective = (a.rate * b.units / (a.units * b.rate)).normalize()
    since = max(a.valid_from, b.valid_from)
    start = "always" if since == date.min else f"from {since.isoformat()}"
    return f"{start}: 1 {currency} = {effective:f} {to}"


def _decimal(value: Any, what: str) -> Decimal:
    try:
        out = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{what} {value!r} is not a number") from None
    if not out.is_finite() or out <= 0:
        raise ValueError(f"{what} {value!r} must be a number > 0")
    return out


def store_sets(conn: Connection) -> list[RateSet]:
    """The ``exchange_rates`` rows in the store, one set per (source, base)."""
    sets: dict[tuple[str, str | None], RateSet] = {}
    er = t.exchange_rates
    for source, data in conn.execute(select(er.c.source, er.c.data)):
        base = data.get("base")
        key = (str(source), base)
        rate_set = sets.get(key)
        if rate_set is None:
            rate_set = sets[key] = RateSet(str(source), base)
        rate_set.add(
            str(data["currency"]),
            Rate(
                date.fromisoformat(str(data["valid_from"])),
                Decimal(str(data.get("units", 1))),
                Decimal(str(data["rate"])),
            ),
        )
    return list(sets.values())


def csv_set(path: Path, base: str) -> RateSet:
    """The rates of a ``date,currency,rate`` file; a bad row is a ``ConfigError`` at its line."""
    rate_set = RateSet(CSV_SET, base)
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read exchange rates: {exc}", file=str(path)) from None
    with handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"date", "currency", "rate"} <= set(reader.fieldnames):
            raise ConfigError("exchange rates need the columns date,currency,rate", file=str(path))
        for row in reader:
            try:
                currency = (row.get("currency") or "").strip().upper()
                if len(currency) != 3 or not currency.isalpha():
                    raise ValueError(f"currency {row.get('currency')!r} is not an ISO code")
                valid_from = date.fromisoformat((row.get("date") or "").strip())
                rate = _decimal((row.get("rate") or "").strip(), "rate")
            except ValueError as exc:
                raise ConfigError(str(exc), file=str(path), line=reader.line_num) from None
            rate_set.add(currency, Rate(valid_from, Decimal(1), rate))
    return rate_set


def fx_table(conn: Connection, config: PipelineConfig) -> FxTable:
    """Every rate the run may use: the ERPs', the CSV file's and the static ones."""
    sets = store_sets(conn)
    if config.fx.rates_csv is not None:
        sets.append(csv_set(config.resolve_path(config.fx.rates_csv), config.base_currency))
    if config.fx_rates:
        static = RateSet(STATIC_SET, config.base_currency)
        for currency, rate in config.fx_rates.items():
            static.add(currency, Rate(date.min, Decimal(1), rate))
        sets.append(static)
    return FxTable(sets)
