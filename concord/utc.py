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
    """``value`` in UTC: a naive datetime is taken to be UTC already; None stays None."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_time(value: str) -> datetime:
    """Parse ISO-8601 text (``Z`` allowed) given on the command line or in a watermark, in UTC.

    Raises ValueError for text that is not an ISO time.
    """
    return as_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
