"""The parsed form of a mapping file: plain dataclasses the parser builds and the compiler reads.

Every node keeps the ``Mark`` (line and column, 1-based) of the YAML it came from and the dotted
output field it belongs to, so any later check or run-time reject can name both. User-provided
values (paths, constants, tables, patterns) live here as data; nothing here is ever turned into
source text.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Direction = Literal["inbound", "outbound"]

TYPES = ("str", "decimal", "int", "float", "bool", "date", "datetime", "currency", "country")
TRANSFORMS = ("trim", "upper", "lower", "title", "company_domain")
COMPARISONS = ("eq", "ne", "in", "not_in", "gt", "ge", "lt", "le", "present", "empty", "matches")


@dataclass(frozen=True)
class Mark:
    """Where a YAML node starts, 1-based."""

    line: int
    column: int


class Wildcard:
    """The ``[*]`` step of a path: every item of a list."""

    def __repr__(self) -> str:
        return "[*]"


WILDCARD = Wildcard()
Step = str | int | Wildcard


@dataclass(frozen=True)
class SourcePath:
    """A dotted path into the input record; ``root`` when it starts with ``$.`` inside ``each``."""

    text: str
    steps: tuple[Step, ...]
    root: bool
    mark: Mark

    @property
    def dotted(self) -> str:
        """The path with list indexes dropped: the form ``read_paths`` and drift reports use."""
        return ".".join(s for s in self.steps if isinstance(s, str))


@dataclass
class Compare:
    """``{path: x, <op>: operand}``: one comparison of a value against a constant."""

    subject: Expr
    op: str
    operand: Any
    mark: Mark
    pattern: re.Pattern[str] | None = None


@dataclass
class AllOf:
    """``all: [...]``: every condition holds."""

    items: list[Condition]
    mark: Mark


@dataclass
class AnyOf:
    """``any: [...]``: at least one condition holds."""

    items: list[Condition]
    mark: Mark


@dataclass
class Not:
    """``not: {...}``: the condition does not hold."""

    item: Condition
    mark: Mark


@dataclass
class EachHolds:
    """``{each: <list path>, any|all: <condition>}``: the condition on any / every list item.

    Paths in the condition are relative to the item (``$.`` for the record's root). ``all`` over
    a missing or empty list is false: nothing there to hold it.
    """

    items: Expr
    quantifier: Literal["any", "all"]
    item: Condition
    mark: Mark


Condition = Compare | AllOf | AnyOf | Not | EachHolds


@dataclass
class Case:
    """One ``{if: condition, then: expression}`` branch of ``when``."""

    condition: Condition
    then: Expr


@dataclass
class Expr:
    """One expression: a source (exactly one of the source attributes) and optional steps."""

    field: str
    mark: Mark
    marks: dict[str, Mark] = dataclasses.field(default_factory=dict)
    # sources
    path: SourcePath | None = None
    has_const: bool = False
    const: Any = None
    coalesce: list[Expr] | None = None
    concat: list[Expr] | None = None
    sep: str = ""
    when: list[Case] | None = None
    else_: Expr | None = None
    object: dict[str, Expr] | None = None
    each: SourcePath | None = None
    each_fields: dict[str, Expr] | None = None
    each_filter: Condition | None = None
    # steps, applied in this order
    on_missing: Literal["default", "reject"] | None = None
    extract: re.Pattern[str] | None = None
    group: int | str = 0
    split: str | None = None
    transforms: tuple[str, ...] = ()
    map: dict[Any, Any] | None = None
    lookup: str | None = None
    has_otherwise: bool = False
    otherwise: Any = None
    has_default: bool = False
    default: Any = None
    type: str | None = None
    format: str | None = None
    tz: str | None = None
    round: int | None = None
    negate_if: Condition | None = None
    join: str | None = None
    as_list: bool = False
    required: bool | None = None
    description: str | None = None

    @property
    def source_kind(self) -> str:
        """Which source the expression reads: path, coalesce, concat, when, object, each, const."""
        for kind in ("path", "coalesce", "concat", "when", "object", "each"):
            if getattr(self, kind) is not None:
                return kind
        return "const"


@dataclass
class Table:
    """A lookup table: inline in ``tables:`` or read from a CSV file next to the mappings."""

    name: str
    values: dict[str, Any]
    mark: Mark


@dataclass
class MappingSpec:
    """A whole mapping file after parsing, before checks against the canonical model."""

    file: Path
    direction: Direction
    entity: str
    source: str | None
    id: Expr | None
    fields: dict[str, Expr]
    marks: dict[str, Mark]
    stringify: bool = False
    key: str | None = None
    on_missing: Literal["default", "reject"] = "default"
    tables: dict[str, Table] = dataclasses.field(default_factory=dict)
    description: str | None = None
