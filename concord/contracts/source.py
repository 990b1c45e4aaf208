"""The source contract: what the extract stage asks of a connector that pulls an ERP.

A source type (a class named in ``SOURCE_TYPES`` or by ``module:Class``) checks its config
section when the config loads (``validate``: no network, no secrets resolved) and builds a
``Source`` from it (``from_config``). ``Source.extract`` yields ``Page``s lazily, each with the
``Checkpoint`` that resumes after it; the pipeline stores the checkpoint in the same transaction
as the page, so a crash resumes after the last committed page and nothing is staged twice.

The protocols stay small on purpose: a capability only some sources have (counting the records
in a window, listing ids for delete sweeps, pages of several entities) is its own small
``runtime_checkable`` protocol next to ``Source``, and the stage asks ``isinstance`` before
using it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from concord.contracts.sections import Exclusion, SourceConfig


@dataclass(frozen=True, slots=True)
class Window:
    """The incremental window: records changed at or after ``start`` and before ``end``.

    None on either side means open: no lower bound (first load, full refresh) or no upper one.
    """

    start: datetime | None
    end: datetime | None


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where a pull resumes: an opaque token only the source that wrote it understands."""

    token: str


@dataclass(slots=True)
class Page:
    """One page of raw records and the checkpoint that resumes after it (None: nothing more)."""

    records: list[dict[str, Any]]
    checkpoint: Checkpoint | None = None


@runtime_checkable
class Source(Protocol):
    """A built source: pulls pages of one entity at a time."""

    name: str

    def extract(self, entity: str, window: Window, resume: Checkpoint | None) -> Iterator[Page]:
        """Yield pages of raw records of ``entity`` changed in ``window``, after ``resume``.

        Pages are fetched as they are consumed (never all at once); raises ``SourceError``
        for anything that stops the pull.
        """
        ...

    def close(self) -> None:
        """Release connections; the source is not used afterwards."""
        ...


@runtime_checkable
class ExcludingSource(Protocol):
    """A source that knows records of an entity to leave out (Tryton: the company's own party).

    The extract stage asks once per pull and leaves the matching records out, as it does for
    the entity's configured ``exclude``.
    """

    def exclusions(self, entity: str) -> list[Exclusion]:
        """The exclusions the source adds for ``entity`` (may ask the ERP; ``SourceError``)."""
        ...


@dataclass(frozen=True, slots=True)
class WindowCount:
    """What the source itself holds in a window: how many records, and their ids when listed.

    ``how`` says how it was counted (``"id listing"``, ``"count endpoint"``), for the run
    report. With ``ids`` (id -> cursor value, as the records carry it) the extract stage checks
    that every record the source holds in the window now is staged at that cursor (records only
    leave a window whose end is fixed while it is pulled); otherwise it compares the numbers.
    """

    total: int
    ids: Mapping[str, str | None] | None = None
    how: str = ""


@runtime_checkable
class CountingSource(Protocol):
    """A source that can say how many records of an entity match a window (the same filter).

    The extract stage asks after each window and compares with what it staged; a mismatch
    re-pulls the window once, then fails the entity naming both numbers. ``Window(None, None)``
    asks for every record (the id sweep).
    """

    def count(self, entity: str, window: Window) -> WindowCount | None:
        """The source's count of ``entity`` in ``window``; None when it cannot count it."""
        ...

    def counts(self, entity: str) -> bool:
        """Whether ``count`` answers for ``entity``.

        Only then does the extract keep every id it received in the window (at full scale
        100 MiB of the extract's peak memory).
        """
        ...


@dataclass(frozen=True, slots=True)
class Trigger:
    """A new or changed record of an entity re-reads its parent in the same run.

    ``parent`` is the parent's entity name in the same source; ``path`` the dotted path in the
    child's record holding the parent's id (Tryton: a cash-journal line's ``invoice_payment``).
    """

    parent: str
    path: str


@runtime_checkable
class RevisitingSource(Protocol):
    """A source that re-reads records whose derived values change without their timestamp.

    ``revisit`` yields the entity's revisit set (records to re-read on every run whatever their
    cursor, e.g. posted invoices that are not paid: a payment changes their amount to pay, not
    their ``last_modified_at``); ``triggers`` names the parents a changed record re-reads;
    ``read`` yields the records of the given ids.
    """

    def revisit(self, entity: str) -> Iterator[Page]:
        """Pages of the entity's revisit set (none when it has no revisit set)."""
        ...

    def triggers(self, entity: str) -> list[Trigger]:
        """The parents a new or changed record of ``entity`` re-reads."""
        ...

    def read(self, entity: str, ids: list[str]) -> Iterator[Page]:
        """Pages of the records of ``entity`` with these ids (ids it does not hold are absent)."""
        ...


class SourceType(Protocol):
    """A source connector class: checks a config section and builds a ``Source`` from it."""

    def validate(self, config: SourceConfig) -> None:
        """Raise ``ConfigError`` naming the key of the first bad setting; no I/O."""
        ...

    def from_config(self, config: SourceConfig) -> Source:
        """Build the source (secrets are resolved when first needed)."""
        ...
