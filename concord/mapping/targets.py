"""What a canonical model field accepts, read from the pydantic model: kind, requiredness, enum.

The checker uses this to refuse mappings that write a field the model lacks, miss a required
one, or convert into an obviously wrong type; the compiler uses it to pick the conversion a field
gets when the mapping names no ``type`` (a ``Decimal`` field is read as ``decimal``, a field with
the ISO currency pattern as ``currency``), and to leave out empty values the model defaults.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo


@dataclass(frozen=True)
class Target:
    """One field of a canonical model as the mapping language sees it."""

    kind: str  # str decimal int float bool datetime date enum object list any
    required: bool = False
    nullable: bool = True
    omit_if_none: bool = False
    natural: str | None = None  # the conversion a mapping gets when it names no type
    enum_values: tuple[str, ...] = ()
    fields: dict[str, Target] = field(default_factory=dict)
    item: Target | None = None
    model: str = ""


_KINDS: dict[type, str] = {
    bool: "bool",
    int: "int",
    float: "float",
    Decimal: "decimal",
    str: "str",
    datetime: "datetime",
    date: "date",
}


def _pattern(metadata: list[Any]) -> str | None:
    for item in metadata:
        pattern = getattr(item, "pattern", None)
        if isinstance(pattern, str):
            return pattern
        if isinstance(item, FieldInfo):
            found = _pattern(list(item.metadata))
            if found:
                return found
    return None


def _describe(annotation: Any, metadata: list[Any]) -> Target:
    """A Target for a type annotation (requiredness is filled in by the caller)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        inner, *extra = typing.get_args(annotation)
        return _describe(inner, [*metadata, *extra])
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(options) == 1:
            return _describe(options[0], metadata)
        return Target("any")
    if origin is list:
        (item,) = typing.get_args(annotation) or (Any,)
        inner = _describe(item, [])
        return Target("list", natural=None, item=inner)
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        values = tuple(str(m.value) for m in annotation)
        return Target("enum", natural="enum", enum_values=values, model=annotation.__name__)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return Target("object", fields=model_targets(annotation), model=annotation.__name__)
    if isinstance(annotation, type) and annotation in _KINDS:
        kind = _KINDS[annotation]
        natural = kind
        pattern = _pattern(metadata)
        if kind == "str" and pattern == "^[A-Z]{3}$":
            natural = "currency"
        elif kind == "str" and pattern == "^[A-Z]{2}$":
            natural = "country"
        return Target(kind, natural=natural)
    return Target("any")


def model_targets(model: type[BaseModel]) -> dict[str, Target]:
    """Field name -> Target for every field of a pydantic model."""
    out: dict[str, Target] = {}
    for name, info in model.model_fields.items():
        base = _describe(info.annotation, list(info.metadata))
        nullable = _nullable(info.annotation)
        required = info.is_required()
        default_is_value = not required and not (info.default is None and nullable)
        out[name] = Target(
            kind=base.kind,
            required=required,
            nullable=nullable,
            omit_if_none=default_is_value,
            natural=base.natural,
            enum_values=base.enum_values,
            fields=base.fields,
            item=base.item,
            model=base.model,
        )
    return out


def _nullable(annotation: Any) -> bool:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return type(None) in typing.get_args(annotation)
    return annotation is Any
