"""A projection of a canonical model: only the fields an outbound mapping reads, validated alike.

The nightly push validates every stored 360 row before mapping it; the full ``Customer360``
validates dozens of fields (figures, FX uses, balance gaps, churn details) no outbound mapping
reads. A projection keeps each field the mapping reads with the model's own annotation and
``FieldInfo`` (type, constraints, default, validators), and narrows nested models and lists of
models to the nested fields read, so ``model_dump(mode="python")`` gives the same value at every
path the mapping reads. It validates nothing else: the 360 rows it reads are written from
validated models by the pipeline itself.

Anything it cannot narrow safely is kept whole (a field read as a value, a path below a field
that is no model, a nested model with validators, serializers or computed fields of its own);
a path naming no field, aliases, or such hooks on the root model give the full model back.
"""

from __future__ import annotations

import copy
import types
import typing
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, create_model

_WHOLE = "*"
"""Tree key marking a path that is read as a value (its whole field is kept)."""

Tree = dict[str, "Tree"]


def projection(
    model: type[BaseModel], values: frozenset[str], containers: frozenset[str] = frozenset()
) -> type[BaseModel]:
    """The projection of ``model`` for these dotted paths (``model`` itself when unsafe).

    ``values`` are paths read as values; ``containers`` are lists only walked (``each``, list
    conditions), whose items are narrowed to the paths read below them. Built once per model
    and path set.
    """
    return _projection(model, values, containers - values)


@lru_cache(maxsize=64)
def _projection(
    model: type[BaseModel], values: frozenset[str], containers: frozenset[str]
) -> type[BaseModel]:
    tree: Tree = {}
    for path in sorted(values | containers):
        node = tree
        for part in path.split("."):
            node = node.setdefault(part, {})
        if path in values:
            node[_WHOLE] = {}
    return _project(model, tree) or model


def _has_hooks(model: type[BaseModel]) -> bool:
    """Validators, serializers or computed fields: narrowing the fields could change them."""
    found = model.__pydantic_decorators__
    return any(
        (
            found.validators,
            found.field_validators,
            found.root_validators,
            found.field_serializers,
            found.model_serializers,
            found.model_validators,
            found.computed_fields,
        )
    )


def _project(model: type[BaseModel], tree: Tree) -> type[BaseModel] | None:
    """``model`` narrowed to ``tree`` (None: it cannot be narrowed, keep or use it whole)."""
    if _has_hooks(model) or model.model_config.get("alias_generator") is not None:
        return None
    fields: dict[str, Any] = {}
    for name, below in tree.items():
        info = model.model_fields.get(name)
        if info is None or info.alias is not None or info.validation_alias is not None:
            return None
        annotation = info.annotation
        if _WHOLE not in below and below:
            annotation = _narrowed(annotation, below)
        fields[name] = (annotation, copy.copy(info))
    config = ConfigDict(**{**model.model_config, "extra": "ignore"})  # type: ignore[typeddict-item]
    built: type[BaseModel] = create_model(  # type: ignore[call-overload]
        f"{model.__name__}Projection", __config__=config, __module__=__name__, **fields
    )
    return built


def _narrowed(annotation: Any, tree: Tree) -> Any:
    """``annotation`` with its model (alone, optional or in a list) narrowed to ``tree``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _project(annotation, tree) or annotation
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is list and len(args) == 1:
        inner = _narrowed(args[0], tree)
        return annotation if inner is args[0] else list[inner]  # type: ignore[valid-type]
    if origin in (typing.Union, types.UnionType) and len(args) == 2 and type(None) in args:
        (some,) = [a for a in args if a is not type(None)]
        inner = _narrowed(some, tree)
        return annotation if inner is some else inner | None
    return annotation  # a path below no model (Any, dict, ...): keep the field whole
