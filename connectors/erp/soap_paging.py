"""Paging and incremental windows for SOAP sources, chosen by ``type`` in YAML.

A pager is stateless: ``first`` gives the paging arguments of the first call, ``next`` the
arguments after a page of records, or None to stop. ``bookmark`` is NAV's ReadMultiple scheme
(pass the last record's Key as ``bookmarkKey`` until an empty result), ``page_number`` counts
pages until a short one, ``single`` makes one call. The incremental window reaches the service as
a NAV filter on a modified-date field (``>=2026-01-01``, ``2026-01-01..2026-01-31``) or as start
and end arguments; ``DateWindows`` splits a long window into slices pulled one after another, so a
service that caps or times out on large result sets still delivers everything.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from concord.utc import as_utc


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BookmarkPaging(_Model):
    """NAV ReadMultiple: bookmarkKey = last record's Key; stop on an empty result."""

    type: Literal["bookmark"] = "bookmark"
    bookmark_arg: str = "bookmarkKey"
    size_arg: str = "setSize"
    key_field: str = "Key"
    stop_on_short_page: bool = False

    def first(self, size: int) -> dict[str, Any]:
        """The arguments of the first call: the set size, no bookmark."""
        return {self.size_arg: size}

    def next(
        self, args: dict[str, Any], records: list[dict[str, Any]], size: int
    ) -> dict[str, Any] | None:
        """The last record's bookmark key as the next call's, or None on an empty (or short) set."""
        if not records or (self.stop_on_short_page and len(records) < size):
            return None
        key = records[-1].get(self.key_field)
        if key in (None, ""):
            raise ValueError(f"the last record has no '{self.key_field}' to use as bookmark")
        return {**args, self.bookmark_arg: str(key)}


class PageNumberPaging(_Model):
    """Page numbers from ``first_page``; stop on a short or empty page."""

    type: Literal["page_number"]
    page_arg: str = "pageNo"
    size_arg: str = "pageSize"
    first_page: int = 1

    def first(self, size: int) -> dict[str, Any]:
        """The arguments of the first call: the first page and the size."""
        return {self.page_arg: self.first_page, self.size_arg: size}

    def next(
        self, args: dict[str, Any], records: list[dict[str, Any]], size: int
    ) -> dict[str, Any] | None:
        """The next page number, or None after a short page."""
        if len(records) < size:
            return None
        return {**args, self.page_arg: int(args[self.page_arg]) + 1}


class SingleCall(_Model):
    """One call returns everything (an optional size argument is still sent)."""

    type: Literal["single"]
    size_arg: str | None = None

    def first(self, size: int) -> dict[str, Any]:
        """The arguments of the only call."""
        return {self.size_arg: size} if self.size_arg else {}

    def next(
        self, args: dict[str, Any], records: list[dict[str, Any]], size: int
    ) -> dict[str, Any] | None:
        """None: one call returns everything."""
        return None


SoapPaging = Annotated[BookmarkPaging | PageNumberPaging | SingleCall, Field(discriminator="type")]
TimeFormat = Literal["date", "datetime", "iso_z"]


def encode_time(value: datetime, fmt: TimeFormat) -> str:
    """A time as the service expects it (date, datetime or ISO with Z)."""
    value = as_utc(value)
    if fmt == "date":
        return value.date().isoformat()
    if fmt == "iso_z":
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return value.isoformat()


class FilterIncremental(_Model):
    """The window as one NAV filter element on a modified-date field (inclusive ranges)."""

    type: Literal["filter"] = "filter"
    field: str = "Last_Date_Modified"
    format: TimeFormat = "date"
    field_key: str = "Field"
    criteria_key: str = "Criteria"

    def criteria(self, start: datetime | None, end: datetime | None) -> str | None:
        """The NAV range filter (``low..high``) for a window, or None when it is open."""
        if start is None and end is None:
            return None
        low = encode_time(start, self.format) if start else ""
        # NAV ranges include their end; a window's end is exclusive
        high = encode_time(end - timedelta(microseconds=1), self.format) if end else ""
        if not high:
            return f">={low}"
        return f"{low}..{high}"

    def apply(
        self,
        arguments: dict[str, Any],
        filter_arg: str,
        start: datetime | None,
        end: datetime | None,
    ) -> dict[str, Any]:
        """The arguments with the window's filter element added."""
        criteria = self.criteria(start, end)
        if criteria is None:
            return arguments
        filters = list(arguments.get(filter_arg) or [])
        filters.append({self.field_key: self.field, self.criteria_key: criteria})
        return {**arguments, filter_arg: filters}


class ArgumentIncremental(_Model):
    """The window as operation arguments (SAP-style ``changedSince``/``changedBefore``)."""

    type: Literal["arguments"]
    start_arg: str
    end_arg: str | None = None
    format: TimeFormat = "iso_z"

    def apply(
        self,
        arguments: dict[str, Any],
        filter_arg: str,
        start: datetime | None,
        end: datetime | None,
    ) -> dict[str, Any]:
        """The arguments with the window's start and end as named arguments."""
        out = dict(arguments)
        if start is not None:
            out[self.start_arg] = encode_time(start, self.format)
        if end is not None and self.end_arg:
            out[self.end_arg] = encode_time(end, self.format)
        return out


SoapIncremental = Annotated[FilterIncremental | ArgumentIncremental, Field(discriminator="type")]


class DateWindows(_Model):
    """Split the window into slices of ``days``; a full pull starts at ``start``."""

    days: int = Field(ge=1, le=3660)
    start: date

    def slices(self, start: datetime | None, end: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Day-aligned windows of the configured length from ``start`` (or day one) to ``end``."""
        low = start or datetime(self.start.year, self.start.month, self.start.day, tzinfo=UTC)
        while low < end:
            high = min(low + timedelta(days=self.days), end)
            yield low, high
            low = high
