"""Column types that behave the same on SQLite and PostgreSQL: exact money, UTC datetimes.

SQLite has no decimal type (SQLAlchemy's Numeric goes through float there), so money is kept as
an integer count of millionths: sums in SQL stay exact on both databases. Datetimes are stored
naive in UTC and come back timezone-aware.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime, Dialect
from sqlalchemy.types import TypeDecorator

from concord.utc import as_utc

MONEY_SCALE = 1_000_000


def money_param(value: Any) -> int:
    """A Decimal (or its text) as the integer millionths a money column stores."""
    return int((Decimal(value) * MONEY_SCALE).to_integral_value())


def utc_param(value: datetime) -> datetime:
    """An aware datetime as the naive UTC a datetime column stores (a naive one is refused)."""
    tz = value.tzinfo
    if tz is None:
        raise ValueError("naive datetime given to a UTC column")
    if tz is UTC and type(value) is datetime:
        return value.replace(tzinfo=None)
    return as_utc(value).replace(tzinfo=None)


def sqlite_utc_param(value: datetime) -> str:
    """``utc_param`` as SQLAlchemy's SQLite ``DATETIME`` writes it (text, microseconds)."""
    if value.tzinfo is UTC and type(value) is datetime:  # the "+00:00" cut, not a new datetime
        return value.isoformat(" ", "microseconds")[:-6]
    return utc_param(value).isoformat(" ", "microseconds")


class MoneyType(TypeDecorator[Decimal]):
    """Decimal stored as integer millionths (exact in SQL sums on every database)."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> int | None:
        """Decimal to integer millionths."""
        if value is None:
            return None
        return money_param(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        """Integer millionths back to a Decimal."""
        if value is None:
            return None
        return Decimal(int(value)) / MONEY_SCALE


def money_or_zero(value: Decimal | None) -> Decimal:
    """A SQL ``SUM`` over a money column (already a Decimal through ``MoneyType``), 0 if NULL."""
    return Decimal(0) if value is None else Decimal(value)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetime, stored naive in UTC so SQLite and PostgreSQL agree."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        """An aware datetime to naive UTC (a naive one is refused)."""
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected datetime, got {type(value).__name__}")
        return utc_param(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Naive UTC back to an aware datetime."""
        if value is None:
            return None
        parsed: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
        return as_utc(parsed)
