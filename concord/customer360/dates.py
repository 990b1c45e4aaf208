"""Business dates: the day a time falls on in the company's time zone.

Finance reads "due", "overdue", "days since" and "new this quarter" in calendar days where the
company is, not in UTC: an invoice due today is not overdue at 01:00 in Berlin. The canonical
model keeps times in UTC, and an ERP value that is only a date (Tryton's ``maturity_date``, NAV's
``Due_Date``) arrives as midnight UTC of that date; such a value *is* that business date, so a
time of exactly 00:00:00.000000 UTC is read as its own date, any other time is converted to the
company zone first.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from concord.utc import as_utc


class BusinessCalendar:
    """Turns UTC times into business dates of one time zone (the config's ``timezone``)."""

    def __init__(self, timezone: str = "UTC") -> None:
        self.timezone = timezone
        self._zone = ZoneInfo(timezone)
        self._utc = timezone == "UTC"

    def date_of(self, value: datetime) -> date:
        """The business date of a time (a date-only ERP value keeps its date).

        A naive value is UTC (the store's columns read without conversion).
        """
        if value.tzinfo is not None:
            value = as_utc(value).replace(tzinfo=None)
        midnight = value.hour == value.minute == value.second == value.microsecond == 0
        if self._utc or midnight:
            return value.date()
        return value.replace(tzinfo=UTC).astimezone(self._zone).date()

    def today(self, as_of: datetime) -> date:
        """The business date of the run's ``as_of`` (its figures are as of this date)."""
        return as_utc(as_of).astimezone(self._zone).date()
