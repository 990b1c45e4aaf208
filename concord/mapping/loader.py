"""Load a mapping file: parse, check against the canonical model, compile; the ``Mapping`` type.

``load_mapping`` is the one entry point the pipeline uses. It raises ``MappingError`` (file,
line, column, field) for any problem in the file, before a single record is read, and returns a
``Mapping`` whose ``apply`` is the generated function itself (no wrapper call per record).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Literal

from concord.errors import MappingError
from concord.mapping.checks import check_mapping
from concord.mapping.compiler import Apply, compile_mapping
from concord.mapping.parser import parse_mapping
from concord.mapping.paths import expr_reads, joined, spec_exprs, spec_reads
from concord.mapping.spec import Expr, MappingSpec, Mark


class Mapping:
    """A compiled mapping file.

    ``apply(record)`` maps one source record (raises ``RecordRejected`` naming the output field);
    ``read_paths`` are all the dotted source paths it reads (the ``id`` expression and every
    field, conditions and ``negate_if`` included); ``value_paths`` those read as values (not only
    walked as lists by ``each`` or a list condition); ``unmapped_paths(record)`` are paths in a
    record it does not read (schema drift); ``python_source`` is the generated code.
    """

    apply: Apply

    def __init__(
        self,
        path: Path,
        spec: MappingSpec,
        apply: Apply,
        python_source: str,
    ) -> None:
        self.path = path
        self.spec = spec
        self.direction: Literal["inbound", "outbound"] = spec.direction
        self.entity: str = spec.entity
        self.source: str | None = spec.source
        self.key: str | None = spec.key
        self.fields: tuple[str, ...] = tuple(spec.fields)
        self.apply = apply
        self.python_source = python_source
        reads = list(spec_reads(spec))
        self.value_paths: frozenset[str] = frozenset(r.dotted for r in reads if not r.container)
        self.read_paths: frozenset[str] = frozenset(r.dotted for r in reads)
        self._shapes: dict[tuple[str, tuple[str, ...]], tuple[tuple[str, str], ...]] = {}
        self._missing: dict[tuple[Any, ...], frozenset[str]] = {}
        self._top_paths = tuple(p for p in self.read_paths if "." not in p)
        self._shallow_paths = tuple(p for p in self.read_paths if p.count(".") == 1)
        self._deep_paths = tuple(p for p in self.read_paths if p.count(".") > 1)
        self._containers = tuple(sorted({p.split(".")[0] for p in self._shallow_paths}))
        self._field_marks: dict[str, Mark] = {}
        self._field_exprs: dict[str, tuple[Expr, str]] = {}
        exprs = spec_exprs(spec)
        _collect_marks(exprs, self._field_marks, self._field_exprs)

    def location(self, field: str | None = None) -> str:
        """``file:line`` of an output field in the mapping file (for rejects).

        ``field`` may be a path below a field with list indexes (``lines.0.quantity``, as the
        canonical model reports it): the deepest field of the mapping on it is named; a field
        the mapping does not write gives the file alone.
        """
        parts = [p for p in (field or "").split(".") if p and not p.isdigit()]
        for size in range(len(parts), 0, -1):
            mark = self._field_marks.get(".".join(parts[:size]))
            if mark is not None:
                return f"{self.path}:{mark.line}"
        return str(self.path)

    def source_paths(self, field: str | None) -> list[str]:
        """The dotted source paths the output ``field`` reads (for marking a reject's payload).

        Like ``location``, a nested field with list indexes (``addresses.0.city``) is looked up
        by its deepest field the mapping writes; an unknown field reads no path.
        """
        parts = [p for p in (field or "").split(".") if p and not p.isdigit()]
        for size in range(len(parts), 0, -1):
            found = self._field_exprs.get(".".join(parts[:size]))
            if found is not None:
                return sorted({r.dotted for r in expr_reads(*found)})
        return []

    def __repr__(self) -> str:
        return f"Mapping({str(self.path)!r}, {self.direction}, {self.entity!r})"

    def unmapped_paths(self, record: dict[str, Any]) -> set[str]:
        """Dotted paths present in ``record`` that the mapping never reads."""
        found: set[str] = set()
        self._unmapped(record, "", found)
        return found

    def missing_paths(self, record: dict[str, Any]) -> set[str]:
        """Mapped source paths absent from ``record`` (schema drift: a field disappeared).

        A key present with a null value is not missing. Inside lists the first element stands
        for the rest. Results are cached per top-level key shape, so the cost stays small.
        """
        shape: tuple[Any, ...] = (tuple(record),)
        for container in self._containers:
            shape += (_shape(record.get(container)),)
        known = self._missing.get(shape)
        if known is None:
            known = frozenset(
                p
                for p in (*self._top_paths, *self._shallow_paths)
                if not _has_path(record, p.split("."))
            )
            if len(self._missing) < 4096:
                self._missing[shape] = known
        if not self._deep_paths:
            return set(known)
        return set(known) | {p for p in self._deep_paths if not _has_path(record, p.split("."))}

    def _unmapped(self, value: dict[str, Any], prefix: str, found: set[str]) -> None:
        shape = (prefix, tuple(value))
        unread = self._shapes.get(shape)
        if unread is None:
            unread = tuple(
                (key, prefix + str(key))
                for key in value
                if prefix + str(key) not in self.value_paths
            )
            if len(self._shapes) < 4096:
                self._shapes[shape] = unread
        for key, path in unread:
            item = value[key]
            if isinstance(item, dict) and item:
                self._unmapped(item, path + ".", found)
            elif isinstance(item, list) and any(isinstance(i, dict) for i in item):
                for element in item:
                    if isinstance(element, dict):
                        self._unmapped(element, path + ".", found)
            elif path not in self.read_paths:
                found.add(path)


def _collect_marks(
    exprs: list[Expr],
    into: dict[str, Mark],
    found: dict[str, tuple[Expr, str]],
    prefix: str = "",
) -> None:
    """Where each output field (nested ones dotted) is written, and its expression.

    Each expression is kept with the source path its own paths are relative to (the list an
    ``each`` walks), so ``source_paths`` can name full paths.
    """
    for expr in exprs:
        into.setdefault(expr.field, expr.marks.get("@key", expr.mark))
        found.setdefault(expr.field, (expr, prefix))
        _collect_marks(list((expr.object or {}).values()), into, found, prefix)
        if expr.each is not None:
            inner = joined(prefix, expr.each)
            _collect_marks(list((expr.each_fields or {}).values()), into, found, inner)


def _shape(value: Any) -> tuple[str, ...] | str:
    """The keys that decide which one-level-deep paths exist under a container value."""
    if value.__class__ is list:
        for item in value:
            if item.__class__ is dict:
                return tuple(item)
        return "[]"
    if value.__class__ is dict:
        return tuple(value)
    return type(value).__name__


def _has_path(value: Any, parts: list[str]) -> bool:
    for i, part in enumerate(parts):
        if isinstance(value, list):
            first = next((v for v in value if isinstance(v, dict)), None)
            if first is None:
                return True  # an empty list has no elements to lack the key
            return _has_path(first, parts[i:])
        if not isinstance(value, dict) or part not in value:
            return False
        value = value[part]
    return True


_cache: dict[Path, tuple[tuple[int, int], Mapping]] = {}
_cache_lock = threading.Lock()


def load_mapping(path: Path) -> Mapping:
    """Parse, check and compile the mapping file at ``path`` (cached while it is unchanged)."""
    path = Path(path)
    try:
        stat = path.stat()
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MappingError(f"cannot read mapping file: {exc}", file=str(path)) from None
    stamp = (stat.st_mtime_ns, stat.st_size)
    key = path.resolve()
    with _cache_lock:
        cached = _cache.get(key)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    mapping = mapping_from_text(path, text)
    with _cache_lock:
        _cache[key] = (stamp, mapping)
    return mapping


def mapping_from_text(path: Path, text: str) -> Mapping:
    """Build a ``Mapping`` from YAML text; ``path`` names it in errors (tests, the CLI)."""
    spec = parse_mapping(path, text)
    targets = check_mapping(spec)
    compiled = compile_mapping(spec, targets)
    return Mapping(path, spec, compiled.apply, compiled.source)
