"""One exception hierarchy for everything concord raises, grouped by what a caller should do.

Every error says whether trying again can help (``retriable``): fatal errors (a broken config or
mapping, credentials refused, a 4xx other than 408/429, a run past its reject ratio) stop at once
and are never retried; retriable ones (timeouts, 5xx, 429, the sync lock busy) may pass on a later
try, which is what the HTTP kit retries and what the Airflow tasks let Airflow retry. Record-level
problems are not exceptions in the pipeline: they become rejects (``RecordRejected`` is only raised
inside a mapping call and caught per record). Messages go through ``concord.redact`` so no secret
reaches a log line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from concord.redact import redact

if TYPE_CHECKING:
    from pydantic import ValidationError

LineOf = Callable[[tuple[str | int, ...]], int | None]
"""Finds the line of a key path in the file being loaded (``LoadedYaml.line``)."""


class ConcordError(Exception):
    """Base of every error concord raises on purpose; fatal unless it says it is retriable."""

    retriable: bool = False

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
    """Pulling from a source failed; says source, url (no secrets), status and attempt.

    ``auth`` marks refused credentials; ``body`` is the parsed error answer, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str,
        url: str | None = None,
        status: int | None = None,
        attempt: int | None = None,
        retriable: bool = False,
        auth: bool = False,
        body: Any = None,
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
        self.auth = auth
        """Credentials refused (a token endpoint, HTTP 401/403): fatal, never per record."""
        self.body = body
        """The parsed error answer, if any (read for its code, never logged whole)."""


class PushError(ConcordError):
    """Pushing to a target failed as a whole (not per record); says target and call.

    ``body`` is the CRM's parsed error answer when it gave one (read to describe a refused
    record, never logged whole).
    """

    def __init__(
        self,
        message: str,
        *,
        target: str,
        url: str | None = None,
        status: int | None = None,
        attempt: int | None = None,
        retriable: bool = False,
        auth: bool = False,
        body: Any = None,
    ) -> None:
        bits = (
            [f"target '{target}'"]
            + ([url] if url else [])
            + ([f"HTTP {status}"] if status is not None else [])
            + ([f"attempt {attempt}"] if attempt is not None else [])
        )
        super().__init__(f"{', '.join(bits)}: {message}")
        self.target, self.url, self.status, self.attempt = target, url, status, attempt
        self.retriable, self.auth, self.body = retriable, auth, body


class StoreError(ConcordError):
    """The store is unreachable, locked by another run, or at the wrong schema version."""


class LockBusy(StoreError):
    """Another run holds the sync lock: retriable, the holder finishes or its heartbeat ages out.

    ``run_id`` is the concord run that holds the lock (an Airflow run's id starts with ``af_``).
    """

    retriable = True

    def __init__(self, message: str, *, run_id: str | None) -> None:
        super().__init__(message)
        self.run_id = run_id


class RunFailed(ConcordError):
    """A run finished its work but broke a configured limit (e.g. the reject ratio)."""


class PushHeld(ConcordError):
    """The push gate held the push: the receivable check differs by more than its tolerance."""
