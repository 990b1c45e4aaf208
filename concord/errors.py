"""One exception hierarchy for everything concord raises, grouped by what a caller should do.

``ConfigError`` and ``MappingError`` are fatal before any I/O; ``SourceError`` and ``PushError``
carry ``retriable`` so the retry layer and Airflow know whether trying again can help. Record-level
problems are not exceptions in the pipeline: they become rejects (``RecordRejected`` is only raised
inside a mapping call and caught per record). Messages go through ``concord.redact`` so no secret
reaches a log line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from concord.redact import redact

if TYPE_CHECKING:
    from pydantic import ValidationError

LineOf = Callable[[tuple[str | int, ...]], int | None]
"""Finds the line of a key path in the file being loaded (``LoadedYaml.line``)."""


class ConcordError(Exception):
    """Base of every error concord raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))

    @property
    def message(self) -> str:
        """The message, already redacted."""
        return str(self.args[0])


class ConfigError(ConcordError):
    """The pipeline config is broken; names the file, line and key."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        where = ":".join(str(p) for p in (file, line) if p is not None)
        parts = [p for p in (where, f"'{key}'" if key else None) if p]
        super().__init__(f"{' '.join(parts)}: {message}" if parts else message)
        self.file, self.line, self.key = file, line, key
        self.reason = message

    @classmethod
    def from_validation(
        cls,
        exc: ValidationError,
        *,
        prefix: Sequence[str | int] = (),
        file: str | None = None,
        line_of: LineOf | None = None,
    ) -> ConfigError:
        """The first error pydantic found, at ``prefix`` + its location, with file and line."""
        err = exc.errors()[0]
        loc = (*prefix, *err["loc"])
        line = line_of(loc) if line_of is not None else None
        return cls(err["msg"], file=file, line=line, key=".".join(map(str, loc)) or None)

    def located(self, file: str, line_of: LineOf) -> ConfigError:
        """This error again, naming ``file`` and the line of its key (keeps one already given)."""
        if self.file is not None:
            return self
        loc = tuple(int(p) if p.isdigit() else p for p in (self.key or "").split(".") if p)
        return ConfigError(self.reason, file=file, line=line_of(loc), key=self.key)


class MappingError(ConcordError):
    """A mapping file is invalid; names the file, line, column and field."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
        field: str | None = None,
    ) -> None:
        where = ":".join(str(p) for p in (file, line, column) if p is not None)
        parts = [p for p in (where, f"field '{field}'" if field else None) if p]
        super().__init__(f"{' '.join(parts)}: {message}" if parts else message)
        self.file, self.line, self.column, self.field = file, line, column, field


class RecordRejected(ConcordError):
    """One record cannot be mapped; the map stage turns this into a stored reject."""

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.reason, self.field = reason, field


class SourceError(ConcordError):
    """Pulling from a source failed; says source, url (no secrets), status and attempt."""

    def __init__(
        self,
        message: str,
        *,
        source: str,
        url: str | None = None,
        status: int | None = None,
        attempt: int | None = None,
        retriable: bool = False,
    ) -> None:
        bits = [f"source '{source}'"]
        if url:
            bits.append(url)
        if status is not None:
            bits.append(f"HTTP {status}")
        if attempt is not None:
            bits.append(f"attempt {attempt}")
        super().__init__(f"{', '.join(bits)}: {message}")
        self.source, self.url, self.status, self.attempt = source, url, status, attempt
        self.retriable = retriable


class PushError(ConcordError):
    """Pushing to a target failed as a whole (not per record); says target and call."""

    def __init__(
        self,
        message: str,
        *,
        target: str,
        url: str | None = None,
        status: int | None = None,
        retriable: bool = False,
    ) -> None:
        bits = (
            [f"target '{target}'"]
            + ([url] if url else [])
            + ([f"HTTP {status}"] if status is not None else [])
        )
        super().__init__(f"{', '.join(bits)}: {message}")
        self.target, self.url, self.status, self.retriable = target, url, status, retriable


class StoreError(ConcordError):
    """The store is unreachable, locked by another run, or at the wrong schema version."""


class RunFailed(ConcordError):
    """A run finished its work but broke a configured limit (e.g. the reject ratio)."""
