"""Every source path a mapping expression reads: the one walker the loader and the checks share.

It follows each part of the language the parser builds and the compiler reads: ``path``,
``coalesce``, ``concat``, ``object``, ``when`` conditions, branches and ``else``, ``each`` with its
``filter`` and ``fields``, ``negate_if``, and the subjects of every condition (comparisons,
``all``/``any``/``not``, list conditions). Inside ``each`` (and a list condition) paths are
relative to the list item unless they start with ``$.``; each read carries the full dotted path
from the record root, so a caller never has to know the scoping rules.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from concord.mapping.spec import (
    AllOf,
    AnyOf,
    Compare,
    Condition,
    EachHolds,
    Expr,
    MappingSpec,
    Not,
    SourcePath,
)


@dataclass(frozen=True, slots=True)
class PathRead:
    """One source path an expression reads.

    ``dotted`` is the full path from the record root, list indexes dropped (below the list an
    ``each`` walks when the path is relative to its items). ``container`` marks a list that is
    walked (``each``, a list condition) rather than read as a value; ``nested`` marks a path
    written relative to a list item, not from the record root.
    """

    path: SourcePath
    dotted: str
    container: bool = False
    nested: bool = False


def joined(prefix: str, path: SourcePath) -> str:
    """The full dotted form of ``path`` read below ``prefix`` (the list item of an ``each``)."""
    return path.dotted if path.root or not prefix else f"{prefix}.{path.dotted}"


def _read(path: SourcePath, prefix: str, *, container: bool = False) -> PathRead:
    return PathRead(path, joined(prefix, path), container, bool(prefix) and not path.root)


def expr_reads(expr: Expr, prefix: str = "") -> Iterator[PathRead]:
    """Every source path ``expr`` reads; ``prefix`` is the list item path inside ``each``."""
    if expr.path is not None:
        yield _read(expr.path, prefix)
    for sub in [*(expr.coalesce or []), *(expr.concat or []), *(expr.object or {}).values()]:
        yield from expr_reads(sub, prefix)
    for case in expr.when or []:
        yield from condition_reads(case.condition, prefix)
        yield from expr_reads(case.then, prefix)
    if expr.else_ is not None:
        yield from expr_reads(expr.else_, prefix)
    if expr.each is not None:
        yield _read(expr.each, prefix, container=True)
        inner = joined(prefix, expr.each)
        if expr.each_filter is not None:
            yield from condition_reads(expr.each_filter, inner)
        for sub in (expr.each_fields or {}).values():
            yield from expr_reads(sub, inner)
    if expr.negate_if is not None:
        yield from condition_reads(expr.negate_if, prefix)


def condition_reads(cond: Condition, prefix: str = "") -> Iterator[PathRead]:
    """Every source path a condition reads (the subjects of its comparisons, its lists)."""
    if isinstance(cond, Compare):
        yield from expr_reads(cond.subject, prefix)
    elif isinstance(cond, Not):
        yield from condition_reads(cond.item, prefix)
    elif isinstance(cond, EachHolds):
        path = cond.items.path
        assert path is not None  # the parser builds a list condition from a path
        yield _read(path, prefix, container=True)
        yield from condition_reads(cond.item, joined(prefix, path))
    elif isinstance(cond, AllOf | AnyOf):
        for item in cond.items:
            yield from condition_reads(item, prefix)


def spec_exprs(spec: MappingSpec) -> list[Expr]:
    """The mapping's top-level expressions: the ``id`` expression (if any) and every field."""
    return [*([spec.id] if spec.id else []), *spec.fields.values()]


def spec_reads(spec: MappingSpec) -> Iterator[PathRead]:
    """Every source path the whole mapping reads: the ``id`` expression and every field."""
    for expr in spec_exprs(spec):
        yield from expr_reads(expr)


_STEPS_BESIDE_ROUND = (
    "extract",
    "split",
    "map",
    "lookup",
    "type",
    "format",
    "tz",
    "negate_if",
    "join",
)
"""``Expr`` steps that, set, make a field more than its source value rounded."""


def _rounded_top_field(expr: Expr) -> tuple[str, int] | None:
    """(field, places) when ``expr`` is a top-level field with ``round`` and no other step."""
    path = expr.path
    if path is None or expr.round is None or path.root or len(path.steps) != 1:
        return None
    (step,) = path.steps
    if not isinstance(step, str) or expr.transforms or expr.as_list:
        return None
    if expr.has_default or expr.has_otherwise:
        return None
    if any(getattr(expr, name) is not None for name in _STEPS_BESIDE_ROUND):
        return None
    return step, expr.round


def rounded_reads(spec: MappingSpec) -> dict[str, int]:
    """Top-level source fields the mapping reads only rounded: the field and its places.

    A field read so (``{path: churn_risk, round: 2}`` and no other step, in every expression
    that reads it) gives an output that depends on the rounded value alone: two records whose
    values round alike map alike there. Any other read of the field, or two different places,
    leaves it out.
    """
    places: dict[str, set[int]] = {}
    raw: set[str] = set()
    for expr in spec_exprs(spec):
        rounded = _rounded_top_field(expr)
        if rounded is not None:
            places.setdefault(rounded[0], set()).add(rounded[1])
            continue
        raw.update(r.dotted.split(".")[0] for r in expr_reads(expr))
    return {f: next(iter(p)) for f, p in places.items() if len(p) == 1 and f not in raw}
