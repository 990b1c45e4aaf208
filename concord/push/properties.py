"""The CRM properties an outbound mapping writes, with the type each should have.

``outbound_properties(mapping, object_type)`` reads the mapping's fields: a ``type: date`` or a
path to a date is a date property, a number (``round``, or a decimal / integer field of the 360)
a number, a boolean a boolean, anything else (joined lists, text) a string. The label is the
field's ``description`` when it has one, else its name in words. ``concord crm setup`` hands
these to a ``PropertyTarget`` to check or create; the mapping's ``key`` is the unique one.
"""

from __future__ import annotations

from concord.contracts import ObjectKind, PropertySpec
from concord.contracts.target import PropertyType
from concord.mapping import Mapping
from concord.mapping.spec import WILDCARD, Expr
from concord.mapping.targets import Target, model_targets
from concord.model import Customer360

_KINDS: dict[str, PropertyType] = {
    "decimal": "number",
    "int": "number",
    "float": "number",
    "date": "date",
    "datetime": "datetime",
    "bool": "bool",
}


def _path_kind(expr: Expr) -> str | None:
    if expr.path is None or WILDCARD in expr.path.steps:
        return None
    current: Target | None = Target("object", fields=model_targets(Customer360))
    for step in expr.path.steps:
        if current is None or not isinstance(step, str) or current.kind != "object":
            return None
        current = current.fields.get(step)
    return current.kind if current is not None else None


def property_type(expr: Expr) -> PropertyType:
    """The CRM type a mapped field needs (see the module docstring)."""
    if expr.join is not None or expr.extract is not None:
        return "string"
    if expr.type is not None:
        return _KINDS.get(expr.type, "string")
    if expr.round is not None:
        return "number"
    return _KINDS.get(_path_kind(expr) or "", "string")


def outbound_properties(mapping: Mapping, object_type: ObjectKind) -> list[PropertySpec]:
    """One spec per property the outbound ``mapping`` writes, in the mapping's order."""
    specs = []
    for name, expr in mapping.spec.fields.items():
        label = expr.description or name.replace("__c", "").replace("_", " ").strip().capitalize()
        specs.append(
            PropertySpec(
                name=name,
                label=label,
                type=property_type(expr),
                object_type=object_type,
                unique=name == mapping.key,
            )
        )
    return specs
