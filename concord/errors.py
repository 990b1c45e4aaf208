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

import difflib
from collections import abc
from collections.abc import Callable, Mapping, Sequence
from types import UnionType
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, get_args, get_origin

from concord.redact import redact

if TYPE_CHECKING:
    from pydantic import BaseModel, ValidationError

LineOf = Callable[[tuple[str | int, ...]], int | None]
"""Finds the line of a key path in the file being loaded (``LoadedYaml.line``)."""


class ConcordError(Exception):
    """Base of every error concord raises on purpose; fatal unless it says it is retriable.

    ``where`` (a file, line and key, never a value) is put before the redacted message as it
    is, so redaction cannot read a key name and the first word after it as a secret.
    """

    retriable: bool = False

    def __init__(self, message: str, *, where: str = "") -> None:
        super().__init__(f"{where}: {redact(message)}" if where else redact(message))

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
        known: Sequence[str] = (),
    ) -> None:
        place = ":".join(str(p) for p in (file, line) if p is not None)
        parts = [p for p in (place, f"'{key}'" if key else None) if p]
        super().__init__(message, where=" ".join(parts))
        self.file, self.line, self.key = file, line, key
        self.reason = message
        self.known = tuple(known)
        """For an unknown key: the keys valid in its place (a caller may add its own)."""

    @classmethod
    def from_validation(
        cls,
        exc: ValidationError,
        *,
        prefix: Sequence[str | int] = (),
        file: str | None = None,
        line_of: LineOf | None = None,
        model: type[BaseModel] | None = None,
    ) -> ConfigError:
        """The first error pydantic found, in words, at ``prefix`` + its location.

        ``model`` (the class that was validated) lets an unknown key name its nearest valid
        neighbour ("did you mean"); the file and line come from ``line_of``.
        """
        errors = exc.errors()
        # A misspelt key shows up twice (unknown key, required key missing): name the typo.
        err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        loc, known = _walk_model(model, tuple(err["loc"]))
        full = (*prefix, *loc)
        line = line_of(full) if line_of is not None else None
        return cls(
            _in_words(err, known),
            file=file,
            line=line,
            key=".".join(map(str, full)) or None,
            known=known if err["type"] == "extra_forbidden" else (),
        )

    def with_known(self, extra: Sequence[str]) -> ConfigError:
        """An unknown-key error again, its suggestion drawn from ``extra`` keys as well."""
        if not self.known or not self.key:
            return self
        name = self.key.rsplit(".", 1)[-1]
        known = sorted({*self.known, *extra})
        reason = _in_words({"type": "extra_forbidden", "loc": (name,)}, known)
        return ConfigError(reason, file=self.file, line=self.line, key=self.key, known=known)

    def located(self, file: str, line_of: LineOf) -> ConfigError:
        """This error again, naming ``file`` and the line of its key (keeps one already given)."""
        if self.file is not None:
            return self
        loc = tuple(int(p) if p.isdigit() else p for p in (self.key or "").split(".") if p)
        return ConfigError(
            self.reason, file=file, line=line_of(loc), key=self.key, known=self.known
        )


_WORDS = {
    "int_parsing": "expected a whole number",
    "int_type": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_parsing": "expected a number",
    "float_type": "expected a number",
    "decimal_parsing": "expected a number",
    "decimal_type": "expected a number",
    "bool_parsing": "expected true or false",
    "bool_type": "expected true or false",
    "string_type": "expected text",
    "dict_type": "expected a mapping of keys",
    "model_type": "expected a mapping of keys",
    "model_attributes_type": "expected a mapping of keys",
    "list_type": "expected a list",
    "datetime_parsing": "expected an ISO 8601 time",
    "datetime_from_date_parsing": "expected an ISO 8601 time",
    "datetime_type": "expected an ISO 8601 time",
    "path_type": "expected a file path",
}


def _got(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:59] + "…"


def _did_you_mean(word: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _listed(text: str) -> list[str]:
    """Names from pydantic's "'a', 'b' or 'c'" wording."""
    return [t.strip(" '") for t in text.replace(" or ", ",").split(",") if t.strip(" '")]


def _in_words(err: Mapping[str, Any], known: Sequence[str]) -> str:
    """One pydantic error as a sentence a config author reads (no pydantic jargon)."""
    kind, loc, ctx = err["type"], err["loc"], err.get("ctx") or {}
    name = str(loc[-1]) if loc else ""
    if kind == "extra_forbidden":
        options = f" (known: {', '.join(sorted(known))})" if known and len(known) <= 12 else ""
        return f"unknown key '{name}'" + (_did_you_mean(name, known) or options)
    if kind == "missing":
        return f"required key '{name}' is missing"
    if kind == "union_tag_invalid":
        tag, expected = str(ctx.get("tag")), str(ctx.get("expected_tags", ""))
        field = str(ctx.get("discriminator", "type")).strip("'")
        return f"unknown {field} '{tag}' (expected one of {expected})" + _did_you_mean(
            tag, _listed(expected)
        )
    if kind == "literal_error":
        expected = str(ctx.get("expected", ""))
        return f"expected {expected}, got {_got(err.get('input'))}" + _did_you_mean(
            str(err.get("input")), _listed(expected)
        )
    if kind in ("value_error", "assertion_error"):
        return str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    words = _WORDS.get(kind, str(err["msg"]))
    return f"{words}, got {_got(err.get('input'))}" if "input" in err else words


def _options(annotation: Any) -> list[Any]:
    """The alternatives of a (possibly Annotated, Optional or union) annotation."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, UnionType):
        return [o for arg in get_args(annotation) for o in _options(arg)]
    return [annotation]


def _models(annotation: Any) -> list[type[BaseModel]]:
    from pydantic import BaseModel

    return [o for o in _options(annotation) if isinstance(o, type) and issubclass(o, BaseModel)]


def _walk_model(
    model: type[BaseModel] | None, loc: tuple[str | int, ...]
) -> tuple[tuple[str | int, ...], list[str]]:
    """The error's location without union tags, and the keys valid where its last part sits."""
    if model is None:
        return loc, []
    node: Any = model
    kept: list[str | int] = []
    for part in loc[:-1]:
        step, tag = _step(node, part)
        if not tag:
            kept.append(part)
        node = step
        if node is None:
            return (*kept, *loc[len(kept) :]), []
    names = sorted({n for m in _models(node) for n, f in m.model_fields.items() if not f.exclude})
    return (*kept, *loc[-1:]), names


def _step(node: Any, part: str | int) -> tuple[Any, bool]:
    """The annotation below ``part`` (and whether ``part`` was a union tag, not a key)."""
    models = _models(node)
    for m in models:
        if isinstance(part, str) and part in m.model_fields:
            return m.model_fields[part].annotation, False
    for m in models:  # a discriminated union reports the chosen tag as a location part
        for f in m.model_fields.values():
            if get_origin(f.annotation) is Literal and part in get_args(f.annotation):
                return m, True
    for option in _options(node):
        origin, args = get_origin(option), get_args(option)
        if origin in (dict, abc.Mapping) and len(args) == 2:
            return args[1], False
        if origin in (list, tuple, abc.Sequence) and args and isinstance(part, int):
            return args[0], False
    return None, False


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


class RunPartial(RunFailed):
    """A run went through, but some sources or targets failed (named in the message).

    The run is stored as ``partial``: what failed kept its watermarks and push state, the rest
    was committed. The CLI exits with status 2.
    """


class PushHeld(ConcordError):
    """The push gate held the push: the receivable check differs by more than its tolerance."""
