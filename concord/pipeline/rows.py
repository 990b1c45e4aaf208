"""Canonical rows straight from the compiled mapping's output, without a pydantic round trip.

The compiled mapping already converts every value to the type its canonical field needs
(``Decimal``, aware ``datetime``, enum text, ISO codes) and refuses missing required values.
What the canonical model still adds is small: text stripped, the string patterns and lengths,
the money digits, ``gt`` bounds, defaults, unknown fields refused. ``FastDumper`` checks exactly
that from the model's own field definitions and writes the JSON form ``model_dump(mode="json")``
would write, as Python values (``Decimal``, UTC ``datetime``, text) that ``row_json`` serialises
to the same JSON pydantic writes. Anything it is not sure about (a value of another type, a model with validators, a
bound it does not know, a Decimal with an exponent) returns ``None``, and the caller validates
that record with pydantic as before, so the verdict and the reject's detail are pydantic's.
A test compares both on every sandbox fixture and on generated payloads.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

import annotated_types
import orjson
from pydantic import AfterValidator, BaseModel
from pydantic.fields import FieldInfo

_UNSURE = object()
_NAMED = ("pattern", "min_length", "max_length", "max_digits", "decimal_places")
Check = Callable[[Any], Any]
"""A field check: the value as the model holds it, or ``_UNSURE`` (pydantic decides)."""
_JSON_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_UTC_Z
_MEMO = 4096  # patterned text values remembered as checked


def row_json(values: dict[str, Any]) -> bytes:
    """The JSON of a canonical row's values, keys sorted: what ``model_dump(mode="json")``
    gives, serialised as ``concord.hashing.json_digest`` does (its digest is the row hash)."""
    return orjson.dumps(values, option=_JSON_OPTIONS, default=str)


def _str_check(pattern: str | None, min_length: int | None, max_length: int | None) -> Check:
    if pattern is None and min_length is None and max_length is None:

        def plain(value: Any) -> Any:
            return value.strip() if value.__class__ is str else _UNSURE

        return plain
    compiled = re.compile(pattern) if pattern is not None else None
    seen: set[str] = set()

    def check(value: Any) -> Any:
        if value.__class__ is not str:
            return _UNSURE
        if value in seen:
            return value
        stripped = value.strip()
        if min_length is not None and len(stripped) < min_length:
            return _UNSURE
        if max_length is not None and len(stripped) > max_length:
            return _UNSURE
        if compiled is not None and compiled.search(stripped) is None:
            return _UNSURE
        if stripped == value and len(seen) < _MEMO:
            seen.add(value)
        return stripped

    return check


def _decimal_check(max_digits: int | None, decimal_places: int | None, gt: Any, ge: Any) -> Check:
    places = 6 if decimal_places is None else decimal_places
    # Plain numbers only: no exponent above zero, at most ``places`` decimals and few enough
    # digits that no reading of max_digits can refuse them; anything else goes to pydantic.
    digits_limit = 18 if max_digits is None else min(18, max_digits - max(0, places))

    def check(value: Any) -> Any:
        if value.__class__ is not Decimal or not value.is_finite():
            return _UNSURE
        _sign, digits, exponent = value.as_tuple()
        if not isinstance(exponent, int) or exponent > 0 or -exponent > places:
            return _UNSURE
        if len(digits) + exponent > digits_limit:
            return _UNSURE
        if gt is not None and not value > gt:
            return _UNSURE
        if ge is not None and not value >= ge:
            return _UNSURE
        return value

    return check


def _datetime_check(value: Any) -> Any:
    if value.__class__ is not datetime:
        return _UNSURE
    tz = value.tzinfo
    if tz is UTC:
        return value
    if tz is None or tz.utcoffset(value) is None:
        return _UNSURE
    return value.astimezone(UTC)


def _date_check(value: Any) -> Any:
    return value if value.__class__ is date else _UNSURE


def _exact(kind: type) -> Check:
    def check(value: Any) -> Any:
        return value if value.__class__ is kind else _UNSURE

    return check


def _float_check(value: Any) -> Any:
    return value if value.__class__ is float else _UNSURE


def _enum_check(values: frozenset[str]) -> Check:
    def check(value: Any) -> Any:
        return value if value.__class__ is str and value in values else _UNSURE

    return check


def _list_check(item: Check) -> Check:
    def check(value: Any) -> Any:
        if value.__class__ is not list:
            return _UNSURE
        out = []
        for element in value:
            done = item(element)
            if done is _UNSURE:
                return _UNSURE
            out.append(done)
        return out

    return check


def _optional(inner: Check) -> Check:
    def check(value: Any) -> Any:
        return None if value is None else inner(value)

    return check


def _bounds(metadata: list[Any]) -> dict[str, Any]:
    """The constraints of a field's metadata; ``unknown`` when one is not understood here."""
    found: dict[str, Any] = {}
    for item in metadata:
        if isinstance(item, FieldInfo):
            found.update(_bounds(list(item.metadata)))
        elif isinstance(item, AfterValidator):
            found.setdefault("validators", []).append(item)
        elif isinstance(item, annotated_types.Gt):
            found["gt"] = item.gt
        elif isinstance(item, annotated_types.Ge):
            found["ge"] = item.ge
        else:
            known = [n for n in _NAMED if getattr(item, n, None) is not None]
            if not known:
                found["unknown"] = True
            for name in known:
                found[name] = getattr(item, name)
    return found


def _known_validator(validator: Any) -> bool:
    """The one validator canonical fields use: aware datetimes to UTC (``model._utc``)."""
    func = getattr(validator, "func", None)
    return getattr(func, "__module__", "") == "concord.model" and func.__name__ == "_utc"


def _check_for(annotation: Any, metadata: list[Any], strip: bool) -> Check | None:
    """The check of one annotation, or None when pydantic must decide every value."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        inner, *extra = typing.get_args(annotation)
        return _check_for(inner, [*metadata, *extra], strip)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(options) != 1:
            return None
        inner_check = _check_for(options[0], metadata, strip)
        return None if inner_check is None else _optional(inner_check)
    bounds = _bounds(metadata)
    if bounds.get("unknown") or any(not _known_validator(v) for v in bounds.get("validators", [])):
        return None
    if origin is list:
        (item,) = typing.get_args(annotation) or (Any,)
        item_check = _check_for(item, [], strip)
        return None if item_check is None else _list_check(item_check)
    if not isinstance(annotation, type):
        return None
    if issubclass(annotation, Enum):
        return _enum_check(frozenset(str(m.value) for m in annotation))
    if issubclass(annotation, BaseModel):
        dumper = FastDumper.for_model(annotation)
        return None if dumper is None else dumper.check
    if annotation is str:
        if not strip:
            return None
        return _str_check(bounds.get("pattern"), bounds.get("min_length"), bounds.get("max_length"))
    if annotation is Decimal:
        return _decimal_check(
            bounds.get("max_digits"),
            bounds.get("decimal_places"),
            bounds.get("gt"),
            bounds.get("ge"),
        )
    if annotation is datetime:
        if not bounds.get("validators"):
            return None  # naive datetimes would be accepted: leave them to pydantic
        return _datetime_check
    if any(k in bounds for k in ("gt", "ge", "pattern", "min_length", "max_length")):
        return None
    if annotation is date:
        return _date_check
    if annotation is bool:
        return _exact(bool)
    if annotation is int:
        return _exact(int)
    if annotation is float:
        return _float_check
    return None


class FastDumper:
    """Checks a mapping's output against one canonical model, fills its defaults.

    ``dump(out)`` is ``model.model_validate(out).model_dump()`` for the outputs it is sure
    about (so ``row_json`` of it is the JSON of ``model_dump(mode="json")``), else None:
    validate that one with pydantic.
    """

    _cache: typing.ClassVar[dict[type[BaseModel], FastDumper | None]] = {}

    def __init__(
        self, fields: list[tuple[str, Check, bool, Callable[[], Any]]], names: frozenset[str]
    ) -> None:
        self._fields = fields
        self._names = names

    @classmethod
    def for_model(cls, model: type[BaseModel]) -> FastDumper | None:
        """The dumper of a model, or None when some field needs pydantic for every value."""
        if model in cls._cache:
            return cls._cache[model]
        cls._cache[model] = None  # recursive models: pydantic decides
        dumper = cls._build(model)
        cls._cache[model] = dumper
        return dumper

    @classmethod
    def _build(cls, model: type[BaseModel]) -> FastDumper | None:
        config = model.model_config
        decorators = model.__pydantic_decorators__
        if (
            config.get("extra") != "forbid"
            or decorators.model_validators
            or decorators.field_validators
            or decorators.validators
            or decorators.root_validators
            or decorators.field_serializers
            or decorators.model_serializers
            or decorators.computed_fields
        ):
            return None
        strip = bool(config.get("str_strip_whitespace"))
        fields: list[tuple[str, Check, bool, Callable[[], Any]]] = []
        for name, info in model.model_fields.items():
            if info.alias is not None or info.validation_alias is not None:
                return None
            check = _check_for(info.annotation, list(info.metadata), strip)
            if check is None:
                return None
            required = info.is_required()
            default: Callable[[], Any]
            if required:
                default = _no_default
            elif info.default_factory is not None:
                made = info.get_default(call_default_factory=True)
                if made not in ([], {}):
                    return None
                default = list if made == [] else dict
            else:
                value = _json_default(info.default)
                if value is _UNSURE:
                    return None
                default = _constant(value)
            fields.append((name, check, required, default))
        return cls(fields, frozenset(model.model_fields))

    def check(self, value: Any) -> Any:
        """A nested object's values, or the unsure marker."""
        if value.__class__ is not dict:
            return _UNSURE
        dumped = self.dump(value)
        return _UNSURE if dumped is None else dumped

    def dump(self, out: dict[str, Any]) -> dict[str, Any] | None:
        """The validated output with its defaults, or None (pydantic decides)."""
        for key in out:
            if key not in self._names:
                return None
        data: dict[str, Any] = {}
        for name, check, required, default in self._fields:
            if name in out:
                value = check(out[name])
                if value is _UNSURE:
                    return None
                data[name] = value
            elif required:
                return None
            else:
                data[name] = default()
        return data


def _no_default() -> Any:  # pragma: no cover - required fields never reach it
    raise AssertionError("required field has no default")


def _constant(value: Any) -> Callable[[], Any]:
    return lambda: value


def _json_default(value: Any) -> Any:
    if value is None or value.__class__ in (bool, int, float, str, Decimal):
        return value
    if isinstance(value, Enum):
        return str(value.value)
    return _UNSURE
