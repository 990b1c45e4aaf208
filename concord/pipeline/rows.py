"""Canonical rows straight from the compiled mapping's output, validated in pydantic-core.

The compiled mapping already converts every value to the type its canonical field needs and
refuses missing required values; what the canonical model adds (text stripped, patterns, money
digits, bounds, defaults, unknown fields refused) it checks in pydantic-core. ``FastDumper``
derives from the model's own core schema a schema of plain dicts: each model becomes a typed
dict with the same fields, config, defaults and constraints, and the one Python validator the
canonical fields use (aware datetimes to UTC, ``concord.model._utc``) becomes the datetime's
``tz_constraint=0`` (UTC required). Validation and the JSON of the row then run in Rust without
a model instance, a Python call per field or a ``model_dump``. An output it refuses (a time in
another zone, a bad value) goes to the model itself, whose verdict and error are the reject's;
so a row is never different from the model's and never one the model would refuse. A model
whose schema holds anything else has no fast dumper (pydantic decides every record).
"""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import SchemaSerializer, SchemaValidator, ValidationError

_DROP = ("ref", "metadata", "serialization")


class _Unsupported(Exception):
    """A core schema node the derived schema cannot reproduce exactly."""


def _utc_validator(function: Any) -> bool:
    func = function.get("function") if isinstance(function, dict) else None
    return (
        getattr(func, "__module__", "") == "concord.model"
        and getattr(func, "__name__", "") == "_utc"
    )


def _derive(node: dict[str, Any]) -> dict[str, Any]:
    """The dict-shaped copy of one core schema node (``_Unsupported`` if not exact)."""
    kind = node.get("type")
    if kind == "model":
        inner = node["schema"]
        if (
            inner.get("type") != "model-fields"
            or inner.get("computed_fields")
            or node.get("custom_init")
            or node.get("root_model")
            or node.get("post_init")
        ):
            raise _Unsupported(str(kind))
        config = dict(node.get("config") or {})
        fields = {}
        for name, field in inner["fields"].items():
            if field.get("type") != "model-field" or set(field) - {"type", "schema", "metadata"}:
                raise _Unsupported(f"field {name}")
            schema = _derive(field["schema"])
            fields[name] = {
                "type": "typed-dict-field",
                "schema": schema,
                "required": schema.get("type") != "default",
            }
        return {
            "type": "typed-dict",
            "fields": fields,
            "extra_behavior": config.get("extra_fields_behavior", "ignore"),
            "config": config,
        }
    if kind == "function-after":
        inner = node["schema"]
        if not _utc_validator(node.get("function")) or inner.get("type") != "datetime":
            raise _Unsupported("validator")
        return {**_derive(inner), "tz_constraint": 0}
    if kind in ("default", "nullable", "list"):
        out = {k: v for k, v in node.items() if k not in _DROP}
        key = "items_schema" if kind == "list" else "schema"
        if key in out:
            out[key] = _derive(out[key])
        if (
            kind == "default"
            and "default_factory" in out
            and out["default_factory"]
            not in (
                list,
                dict,
            )
        ):
            raise _Unsupported("default factory")
        return out
    if kind in ("str", "decimal", "datetime", "date", "bool", "int", "float", "enum", "literal"):
        return {k: v for k, v in node.items() if k not in _DROP}
    raise _Unsupported(str(kind))


class FastDumper:
    """One canonical model's dict-shaped validator and serializer (from its core schema).

    ``validate(out)`` is the model's ``model_dump()`` of ``out`` (enums as members) when the
    derived schema accepts it, else None: validate that one with the model. ``to_json(values)``
    is the JSON ``model_dump(mode="json")`` writes, in field order.
    """

    _cache: typing.ClassVar[dict[type[BaseModel], FastDumper | None]] = {}

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self._validator = SchemaValidator(schema)  # type: ignore[arg-type]
        self._serializer = SchemaSerializer(schema)  # type: ignore[arg-type]

    @classmethod
    def for_model(cls, model: type[BaseModel]) -> FastDumper | None:
        """The dumper of a model, or None when its schema holds what it cannot reproduce."""
        if model not in cls._cache:
            try:
                cls._cache[model] = cls(_derive(model.__pydantic_core_schema__))  # type: ignore[arg-type]
            except _Unsupported:
                cls._cache[model] = None
        return cls._cache[model]

    def validate(self, out: dict[str, Any]) -> dict[str, Any] | None:
        """The validated values with their defaults, or None (the model decides)."""
        try:
            values: dict[str, Any] = self._validator.validate_python(out)
        except ValidationError:
            return None
        return values

    def to_json(self, values: dict[str, Any]) -> bytes:
        """The JSON of validated values (or of a model's ``model_dump()``)."""
        return self._serializer.to_json(values)
