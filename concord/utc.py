"""Time in concord is timezone-aware UTC: the current time, naive values read as UTC, ISO parsing.

Every stage, store column and report uses these three functions, so a naive datetime never
meets an aware one and a window end given on the command line means the same instant wherever
it is read. A naive value is taken to be UTC (what the store keeps and Airflow passes); an aware
value is converted to UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload


def utcnow() -> datetime:
    """The current time, UTC-aware."""
    return datetime.now(UTC)


@overload
def as_utc(value: datetime) -> datetime: ...


@overload
def as_utc(value: None) -> None: ...


def as_utc(value: datetime | None) -> datetime | None:
    """``value`` in UTC: a naive datetime is taken to be UTC already; None stays None.

    The result is a plain ``datetime`` even for a subclass such as Airflow's pendulum times,
    whose arithmetic would drop a standard-library time zone.
    """
    if value is None:
        return None
    u = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return datetime(
        u.year, u.month, u.day, u.hour, u.minute, u.second, u.microsecond, tzinfo=UTC, fold=u.fold
    )


def parse_time(value: str) -> datetime:
    """Parse ISO-8601 text (``Z`` allowed) given on the command line or in a watermark, in UTC.

    Raises ValueError for text that is not an ISO time.
    """
    return as_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
