"""The behaviour the extract stage relies on from every ``Source``, as an inheritable test suite.

A connector's tests subclass ``SourceContract`` (the class name must start with ``Test``), set
``entity`` to an entity of at least three pages, and override the ``source`` fixture (a built
source against a loopback server) and the ``requests_made`` fixture (how many requests that
server has received so far).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest

from concord.contracts import Page, Source, Window
from concord.errors import SourceError

ALL = Window(None, None)


class SourceContract:
    """Lazy pages, a checkpoint on every page but the last, resume without duplicates."""

    entity: ClassVar[str]
    """An entity the server holds at least three pages of."""
    id_field: ClassVar[str] = "id"
    """The field that identifies a record of ``entity``."""

    @pytest.fixture
    def source(self) -> Iterator[Source]:
        """A built source against a loopback server (closed afterwards)."""
        raise NotImplementedError("override the source fixture")

    @pytest.fixture
    def requests_made(self) -> Callable[[], int]:
        """A function answering how many requests the server has received so far."""
        raise NotImplementedError("override the requests_made fixture")

    def ids(self, pages: list[Page]) -> list[Any]:
        """The ids of every record on ``pages``, in order."""
        return [r[self.id_field] for p in pages for r in p.records]

    def test_it_is_a_source(self, source: Source) -> None:
        """The built connector is a ``Source`` whose class validates and builds from config."""
        assert isinstance(source, Source)
        assert callable(getattr(type(source), "validate", None))
        assert callable(getattr(type(source), "from_config", None))

    def test_pages_are_fetched_as_they_are_consumed(
        self, source: Source, requests_made: Callable[[], int]
    ) -> None:
        """No request before the first page is asked for, and one page at a time after."""
        before = requests_made()
        pages = source.extract(self.entity, ALL, None)
        assert requests_made() == before, "extract fetched before the first page was asked for"
        next(pages)
        after_first = requests_made()
        rest = list(pages)
        assert rest, f"{self.entity} needs at least three pages for this suite"
        assert requests_made() > after_first

    def test_every_page_but_the_last_carries_a_checkpoint(self, source: Source) -> None:
        """A crash after any page but the last can resume; the last says nothing is left."""
        pages = list(source.extract(self.entity, ALL, None))
        assert len(pages) >= 3, f"{self.entity} needs at least three pages for this suite"
        assert all(p.checkpoint is not None for p in pages[:-1])
        assert pages[-1].checkpoint is None

    def test_every_record_has_an_id(self, source: Source) -> None:
        """Every record carries its id."""
        ids = self.ids(list(source.extract(self.entity, ALL, None)))
        assert ids and all(i not in (None, "") for i in ids)

    def test_resuming_from_any_checkpoint_pulls_the_rest_without_duplicates(
        self, source: Source
    ) -> None:
        """Resuming after page k pulls exactly the records after page k."""
        pages = list(source.extract(self.entity, ALL, None))
        everything = self.ids(pages)
        assert len(everything) == len(set(everything)), "a clean pull repeated a record"
        for done in range(1, len(pages)):
            resumed = self.ids(list(source.extract(self.entity, ALL, pages[done - 1].checkpoint)))
            assert self.ids(pages[:done]) + resumed == everything, f"resumed after page {done}"

    def test_an_entity_that_is_not_configured_is_a_source_error(self, source: Source) -> None:
        """An entity missing from the config is a ``SourceError``, not an empty pull."""
        with pytest.raises(SourceError, match="not configured"):
            list(source.extract("no_such_entity", ALL, None))
